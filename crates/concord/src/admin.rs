//! `concord admin`: cluster membership from the command line, over the ZooKeeper protocol
//! (the same `reconfig` request and `/zookeeper/config` node zkCli and kazoo use).

use crate::client::Client;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use concord_jute::{ErrorCode, ReconfigRequest, Request, Response, Stat};

/// Options of `concord admin`.
#[derive(Args, Debug, Clone)]
#[command(about = "Show or change the cluster membership of a running concord (or ZooKeeper)")]
pub struct AdminArgs {
    /// Any server of the cluster, host:port.
    #[arg(long, short, default_value = "127.0.0.1:2181")]
    pub server: String,
    /// Digest credentials to authenticate with first, e.g. the super user's.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub auth: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// The `concord admin` commands.
#[derive(Subcommand, Debug, Clone)]
pub enum AdminCommand {
    /// Print the membership (/zookeeper/config) as the cluster last committed it.
    Config,
    /// Change the membership, as zkCli's reconfig: add or replace servers and remove ids, or
    /// give the whole new member list. Needs reconfigEnabled=true and the super user (or write
    /// permission on /zookeeper/config).
    Reconfig {
        /// Servers to add or replace, e.g. server.4=10.0.0.4:2888:3888:observer;2181.
        #[arg(long, value_name = "server.N=SPEC", value_delimiter = ',')]
        add: Vec<String>,
        /// Ids of servers to remove.
        #[arg(long, value_name = "ID", value_delimiter = ',')]
        remove: Vec<String>,
        /// The whole new member list (instead of --add and --remove).
        #[arg(long, value_name = "server.N=SPEC", value_delimiter = ',', conflicts_with_all = ["add", "remove"])]
        members: Vec<String>,
        /// Change only if the config version is still this one (hex, as the version= line).
        #[arg(long, short = 'v', value_name = "HEX")]
        version: Option<String>,
    },
}

/// What a failed request's error code means, in zkCli's words where it has them.
fn explain(e: ErrorCode) -> &'static str {
    match e {
        ErrorCode::ReconfigDisabled => "reconfig is disabled on the server (reconfigEnabled=false)",
        ErrorCode::Unimplemented => "the server is not part of a cluster",
        ErrorCode::NoAuth => "insufficient permission: authenticate as the super user (--auth)",
        ErrorCode::BadVersion => "the config version is not the current one",
        ErrorCode::BadArguments | ErrorCode::MarshallingError => "the arguments are not valid",
        ErrorCode::ReconfigInProgress => "another reconfiguration is in progress",
        ErrorCode::NewConfigNoQuorum => {
            "no quorum of the new config is connected and up to date with the leader"
        }
        ErrorCode::ConnectionLoss => "the leader changed or could not be reached; try again",
        _ => "the request failed",
    }
}

fn failed(what: &str, code: i32) -> anyhow::Error {
    match ErrorCode::from_code(code) {
        Some(e) => anyhow::anyhow!("{what} failed: {} ({e})", explain(e)),
        None => anyhow::anyhow!("{what} failed with error code {code}"),
    }
}

fn data_of(resp: Option<Response>) -> anyhow::Result<(String, Stat)> {
    match resp {
        Some(Response::GetData(data, stat)) => Ok((
            String::from_utf8_lossy(&data.unwrap_or_default()).into_owned(),
            stat,
        )),
        other => bail!("unexpected reply {other:?}"),
    }
}

/// Runs one admin command; returns what to print.
pub async fn run(args: &AdminArgs) -> anyhow::Result<String> {
    let mut c = Client::connect(&args.server).await?;
    if let Some(cred) = &args.auth {
        let (h, _) = c
            .request(&Request::Auth {
                auth_type: 0,
                scheme: "digest".into(),
                auth: cred.as_bytes().to_vec(),
            })
            .await
            .context("authentication")?;
        if h.err != 0 {
            return Err(failed("authentication", h.err));
        }
    }
    match &args.command {
        AdminCommand::Config => {
            let path = "/zookeeper/config".to_string();
            let (h, _) = c.request(&Request::Sync { path: path.clone() }).await?;
            if h.err != 0 {
                return Err(failed("sync", h.err));
            }
            let (h, resp) = c.request(&Request::GetData { path, watch: false }).await?;
            if h.err != 0 {
                return Err(failed("reading the config", h.err));
            }
            let (text, _) = data_of(resp)?;
            if text.is_empty() {
                bail!("the server has no cluster membership (a single server)");
            }
            Ok(text)
        }
        AdminCommand::Reconfig {
            add,
            remove,
            members,
            version,
        } => {
            if add.is_empty() && remove.is_empty() && members.is_empty() {
                bail!("give --add, --remove or --members");
            }
            let list = |v: &Vec<String>| (!v.is_empty()).then(|| v.join(","));
            let cur_config_id = match version {
                Some(v) => i64::from_str_radix(v.trim_start_matches("0x"), 16)
                    .with_context(|| format!("--version {v:?} is not a hex number"))?,
                None => -1,
            };
            let (h, resp) = c
                .request(&Request::Reconfig(ReconfigRequest {
                    joining: list(add),
                    leaving: list(remove),
                    new_members: list(members),
                    cur_config_id,
                }))
                .await?;
            if h.err != 0 {
                return Err(failed("reconfig", h.err));
            }
            let (text, _) = data_of(resp)?;
            Ok(format!("Committed new configuration:\n{text}"))
        }
    }
}
