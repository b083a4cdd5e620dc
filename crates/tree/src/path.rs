//! Znode path rules, as ZooKeeper's PathUtils.validatePath applies them.

use concord_jute::ErrorCode;

/// Why a path is not a valid znode path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPath(pub &'static str);

fn bad_char(c: char) -> bool {
    c == '\0'
        || ('\u{1}'..='\u{1f}').contains(&c)
        || ('\u{7f}'..='\u{9f}').contains(&c)
        || ('\u{f000}'..='\u{f8ff}').contains(&c)
        || ('\u{fff0}'..='\u{ffff}').contains(&c)
}

/// Checks a path the way ZooKeeper does: absolute, no empty, `.` or `..` segments, no trailing
/// slash (except `/` itself, or when a sequential suffix will follow), no NUL or control
/// characters.
pub fn validate(path: &str, sequential: bool) -> Result<(), InvalidPath> {
    if path.is_empty() {
        return Err(InvalidPath("path must not be empty"));
    }
    if !path.starts_with('/') {
        return Err(InvalidPath("path must start with /"));
    }
    if path == "/" {
        return Ok(());
    }
    // A sequential create may end in '/': the suffix is appended to it.
    let body = if sequential && path.ends_with('/') {
        &path[1..path.len() - 1]
    } else {
        &path[1..]
    };
    if body.is_empty() {
        return Ok(()); // "/" with a sequential suffix
    }
    if body.ends_with('/') {
        return Err(InvalidPath("path must not end with /"));
    }
    for seg in body.split('/') {
        if seg.is_empty() {
            return Err(InvalidPath("empty segment"));
        }
        if seg == "." || seg == ".." {
            return Err(InvalidPath("relative segment"));
        }
        if seg.chars().any(bad_char) {
            return Err(InvalidPath("invalid character"));
        }
    }
    Ok(())
}

/// Validates a path for a non-sequential operation, as an error code.
pub fn check(path: &str) -> Result<(), ErrorCode> {
    validate(path, false).map_err(|_| ErrorCode::BadArguments)
}

/// Splits `/a/b/c` into (`/a/b`, `c`); the root's parent is None.
pub fn split_parent(path: &str) -> Option<(&str, &str)> {
    if path == "/" {
        return None;
    }
    let i = path.rfind('/')?;
    let parent = if i == 0 { "/" } else { &path[..i] };
    Some((parent, &path[i + 1..]))
}

/// Iterates the segments of a valid path (none for `/`).
pub fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// Joins a parent path and a child name.
pub fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// True when `path` is `ancestor` or lies below it.
pub fn is_within(path: &str, ancestor: &str) -> bool {
    ancestor == "/"
        || path == ancestor
        || (path.starts_with(ancestor) && path.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid_paths() {
        for p in [
            "/",
            "/a",
            "/a/b",
            "/zookeeper",
            "/a.b",
            "/..a",
            "/a/.b",
            "/ü",
        ] {
            assert!(validate(p, false).is_ok(), "{p}");
        }
        for p in [
            "",
            "a",
            "a/b",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/..",
            "/a/./b",
            "/a/../b",
            "/a\0b",
            "/a\u{1}",
            "/\u{f000}",
            "/\u{fff5}",
        ] {
            assert!(validate(p, false).is_err(), "{p:?}");
        }
        assert!(validate("/a/", true).is_ok());
        assert!(validate("/", true).is_ok());
        assert!(validate("/a//", true).is_err());
    }

    #[test]
    fn parents_and_joins() {
        assert_eq!(split_parent("/a"), Some(("/", "a")));
        assert_eq!(split_parent("/a/b"), Some(("/a", "b")));
        assert_eq!(split_parent("/"), None);
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert!(is_within("/a/b", "/a"));
        assert!(is_within("/a", "/a"));
        assert!(!is_within("/ab", "/a"));
        assert!(is_within("/x", "/"));
        assert_eq!(segments("/a/b").collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(segments("/").count(), 0);
    }
}
