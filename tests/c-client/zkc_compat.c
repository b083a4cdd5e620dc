/*
 * The Apache ZooKeeper C client (Debian's libzookeeper-mt2 3.8) against a ZooKeeper-protocol
 * server.  Each check prints "PASS name" or "FAIL name: why"; the program exits 1 if any check
 * failed.  Build and run with tests/c-client/run.sh HOST:PORT [check ...].
 *
 * Assumes TTL nodes are enabled on the server (extendedTypesEnabled) and a super digest for
 * "super:test".  Everything is created under /c-client-compat, which is removed first.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#define THREADED 1 /* the synchronous API of libzookeeper_mt */
#include <zookeeper/zookeeper.h>

#define ROOT "/c-client-compat"

static const char *hosts;
static int passed, failed;
static char failed_names[4096];
static char why[1024];
static int selected_count;
static char **selected;

/* ------------------------------------------------------------------ events */

#define MAXEV 256
struct evq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    int type[MAXEV], state[MAXEV];
    char path[MAXEV][256];
};

static struct evq *evq_new(void) {
    struct evq *q = calloc(1, sizeof *q);
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    return q;
}

static void evq_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx) {
    (void)zh;
    struct evq *q = ctx;
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    if (q->n < MAXEV) {
        q->type[q->n] = type;
        q->state[q->n] = state;
        snprintf(q->path[q->n], sizeof q->path[0], "%s", path ? path : "");
        q->n++;
    }
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* The CLOCK_REALTIME time `ms` milliseconds from now, for pthread_cond_timedwait. */
static struct timespec deadline_in(int ms) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) { dl.tv_sec++; dl.tv_nsec -= 1000000000L; }
    return dl;
}

/* Waits for the first event that is not a session event; removes and returns it (0 on timeout). */
static int evq_pop(struct evq *q, int ms, int *type, char *path, size_t plen, int skip_session) {
    struct timespec dl = deadline_in(ms);
    pthread_mutex_lock(&q->mu);
    for (;;) {
        for (int i = 0; i < q->n; i++) {
            if (skip_session && q->type[i] == ZOO_SESSION_EVENT) continue;
            *type = q->type[i];
            snprintf(path, plen, "%s", q->path[i]);
            memmove(&q->type[i], &q->type[i + 1], sizeof(int) * (q->n - i - 1));
            memmove(&q->state[i], &q->state[i + 1], sizeof(int) * (q->n - i - 1));
            memmove(&q->path[i], &q->path[i + 1], sizeof q->path[0] * (q->n - i - 1));
            q->n--;
            pthread_mutex_unlock(&q->mu);
            return 1;
        }
        if (pthread_cond_timedwait(&q->cv, &q->mu, &dl) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&q->mu);
    return 0;
}

/* Waits until a session event with the given state has been seen. */
static int evq_wait_state(struct evq *q, int state, int ms) {
    struct timespec dl = deadline_in(ms);
    pthread_mutex_lock(&q->mu);
    for (;;) {
        for (int i = 0; i < q->n; i++)
            if (q->type[i] == ZOO_SESSION_EVENT && q->state[i] == state) { pthread_mutex_unlock(&q->mu); return 1; }
        if (pthread_cond_timedwait(&q->cv, &q->mu, &dl) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&q->mu);
    return 0;
}

static const char *evname(int t) {
    if (t == ZOO_CREATED_EVENT) return "CREATED";
    if (t == ZOO_DELETED_EVENT) return "DELETED";
    if (t == ZOO_CHANGED_EVENT) return "CHANGED";
    if (t == ZOO_CHILD_EVENT) return "CHILD";
    if (t == ZOO_SESSION_EVENT) return "SESSION";
    if (t == ZOO_NOTWATCHING_EVENT) return "NOTWATCHING";
    return "?";
}

/* ------------------------------------------------------------------ assertions */

#define FAILF(...) do { snprintf(why, sizeof why, __VA_ARGS__); return 0; } while (0)
#define EXPECT(cond, ...) do { if (!(cond)) { char _m[700]; snprintf(_m, sizeof _m, __VA_ARGS__); FAILF("%s (line %d)", _m, __LINE__); } } while (0)
#define EXPECT_RC(want, call, what) do { int _rc = (call); if (_rc != (want)) \
        FAILF("%s: expected %d (%s) but got %d (%s) (line %d)", what, (want), zerror(want), _rc, zerror(_rc), __LINE__); } while (0)
#define OK(call, what) EXPECT_RC(ZOK, call, what)

static zhandle_t *handles[16];
static struct evq *queues[16];
static int nhandles;

static zhandle_t *connect_q(struct evq **qout, const clientid_t *cid) {
    struct evq *q = evq_new();
    zhandle_t *zh = zookeeper_init(hosts, evq_watcher, 10000, cid, q, 0);
    if (!zh) return NULL;
    if (nhandles < 16) { handles[nhandles] = zh; queues[nhandles] = q; nhandles++; }
    if (qout) *qout = q;
    if (!cid && !evq_wait_state(q, ZOO_CONNECTED_STATE, 15000)) return NULL;
    return zh;
}

static zhandle_t *connect_zk(struct evq **qout) { return connect_q(qout, NULL); }

static void close_handle(zhandle_t *zh) {
    for (int i = 0; i < nhandles; i++)
        if (handles[i] == zh) { zookeeper_close(zh); handles[i] = NULL; return; }
}

static void close_all(void) {
    for (int i = 0; i < nhandles; i++) {
        if (handles[i]) zookeeper_close(handles[i]);
        handles[i] = NULL;
        /* queues are leaked on purpose: a late callback could still touch them */
    }
    nhandles = 0;
}

static int is_selected(const char *name) {
    if (selected_count == 0) return 1;
    for (int i = 0; i < selected_count; i++) if (!strcmp(selected[i], name)) return 1;
    return 0;
}

static void run(const char *name, int (*fn)(void)) {
    if (!is_selected(name)) return;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    why[0] = 0;
    int ok = fn();
    close_all();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    if (ok) {
        passed++;
        printf("PASS %s (%ld ms)\n", name, ms);
    } else {
        failed++;
        printf("FAIL %s: %s (%ld ms)\n", name, why, ms);
        if (strlen(failed_names) + strlen(name) + 3 < sizeof failed_names) {
            if (failed_names[0]) strcat(failed_names, ", ");
            strcat(failed_names, name);
        }
    }
    fflush(stdout);
}

static void msleep(int ms) { usleep((useconds_t)ms * 1000); }

/* Deletes a subtree; returns ZOK or the first error other than ZNONODE. */
static int delete_tree(zhandle_t *zh, const char *path) {
    struct String_vector v;
    int rc = zoo_get_children(zh, path, 0, &v);
    if (rc == ZNONODE) return ZOK;
    if (rc != ZOK) return rc;
    for (int i = 0; i < v.count; i++) {
        char child[1024];
        snprintf(child, sizeof child, "%s/%s", path, v.data[i]);
        rc = delete_tree(zh, child);
        if (rc != ZOK) { deallocate_String_vector(&v); return rc; }
    }
    deallocate_String_vector(&v);
    rc = zoo_delete(zh, path, -1);
    return rc == ZNONODE ? ZOK : rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int wait_gone(zhandle_t *zh, const char *path, int ms) {
    for (int waited = 0; waited <= ms; waited += 100) {
        struct Stat st;
        if (zoo_exists(zh, path, 0, &st) == ZNONODE) return 1;
        msleep(100);
    }
    return 0;
}

/* ------------------------------------------------------------------ checks */

static int t_connect(void) {
    struct evq *q;
    zhandle_t *zh = connect_zk(&q);
    EXPECT(zh, "no connection to %s", hosts);
    EXPECT(zoo_state(zh) == ZOO_CONNECTED_STATE, "state %d after connect", zoo_state(zh));
    const clientid_t *id = zoo_client_id(zh);
    EXPECT(id->client_id != 0, "session id 0");
    int to = zoo_recv_timeout(zh);
    EXPECT(to >= 4000 && to <= 10000, "negotiated timeout %d", to);
    return 1;
}

static int t_crud(void) {
    zhandle_t *zh = connect_zk(NULL);
    EXPECT(zh, "connect");
    char buf[512], pbuf[256];
    int len;
    struct Stat st;
    OK(zoo_create(zh, ROOT "/crud", "v1", 2, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, pbuf, sizeof pbuf), "create");
    EXPECT(!strcmp(pbuf, ROOT "/crud"), "created path %s", pbuf);
    EXPECT_RC(ZNODEEXISTS, zoo_create(zh, ROOT "/crud", "x", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), "create existing");
    EXPECT_RC(ZNONODE, zoo_create(zh, ROOT "/nope/child", "x", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), "create under a missing parent");
    len = sizeof buf;
    OK(zoo_get(zh, ROOT "/crud", 0, buf, &len, &st), "get");
    EXPECT(len == 2 && !memcmp(buf, "v1", 2), "get data (len %d)", len);
    EXPECT(st.version == 0 && st.dataLength == 2 && st.czxid == st.mzxid && st.ephemeralOwner == 0 && st.numChildren == 0,
           "stat of a new node: version %d dataLength %d czxid %" PRId64 " mzxid %" PRId64, st.version, st.dataLength, st.czxid, st.mzxid);
    EXPECT(st.ctime > 1500000000000LL, "ctime is a time in ms: %" PRId64, st.ctime);
    EXPECT_RC(ZNONODE, zoo_get(zh, ROOT "/missing", 0, buf, &len, &st), "get missing");
    OK(zoo_set2(zh, ROOT "/crud", "v2", 2, 0, &st), "set with version 0");
    EXPECT(st.version == 1 && st.mzxid > st.czxid, "stat after set: version %d", st.version);
    EXPECT_RC(ZBADVERSION, zoo_set(zh, ROOT "/crud", "x", 1, 0), "set with a stale version");
    EXPECT_RC(ZNONODE, zoo_set(zh, ROOT "/missing", "x", 1, -1), "set missing");
    OK(zoo_exists(zh, ROOT "/crud", 0, &st), "exists");
    EXPECT(st.version == 1, "exists stat version %d", st.version);
    EXPECT_RC(ZNONODE, zoo_exists(zh, ROOT "/missing", 0, &st), "exists missing");
    OK(zoo_create(zh, ROOT "/crud/kid", "k", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), "create child");
    EXPECT_RC(ZNOTEMPTY, zoo_delete(zh, ROOT "/crud", -1), "delete a node with children");
    EXPECT_RC(ZBADVERSION, zoo_delete(zh, ROOT "/crud/kid", 5), "delete with a wrong version");
    OK(zoo_delete(zh, ROOT "/crud/kid", 0), "delete with the right version");
    EXPECT_RC(ZNONODE, zoo_delete(zh, ROOT "/crud/kid", -1), "delete again");
    OK(zoo_delete(zh, ROOT "/crud", -1), "delete");
    /* create2 returns the Stat of the new node. */
    OK(zoo_create2(zh, ROOT "/c2", "abc", 3, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, pbuf, sizeof pbuf, &st), "create2");
    EXPECT(st.dataLength == 3 && st.version == 0 && st.czxid > 0 && st.czxid == st.mzxid && st.czxid == st.pzxid,
           "create2 stat: dataLength %d czxid %" PRId64 " pzxid %" PRId64, st.dataLength, st.czxid, st.pzxid);
    /* The path buffer is truncated to its length, as the C client documents. */
    char small[8];
    OK(zoo_create(zh, ROOT "/truncated-name", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, small, sizeof small), "create with a short path buffer");
    EXPECT(!strcmp(small, "/c-clie"), "truncated path '%s'", small);
    return 1;
}

static int t_null_and_empty_data(void) {
    zhandle_t *zh = connect_zk(NULL);
    EXPECT(zh, "connect");
    char buf[16];
    int len = sizeof buf;
    struct Stat st;
    OK(zoo_create(zh, ROOT "/null", NULL, -1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), "create with null data");
    OK(zoo_get(zh, ROOT "/null", 0, buf, &len, &st), "get null");
    EXPECT(len == -1, "null data comes back with length -1, got %d", len);
    EXPECT(st.dataLength == 0, "dataLength of null data %d", st.dataLength);
    OK(zoo_create(zh, ROOT "/empty", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), "create with empty data");
    len = sizeof buf;
    OK(zoo_get(zh, ROOT "/empty", 0, buf, &len, &st), "get empty");
    EXPECT(len == 0, "empty data comes back with length 0, got %d", len);
    OK(zoo_set(zh, ROOT "/empty", NULL, -1, -1), "set null");
    len = sizeof buf;
    OK(zoo_get(zh, ROOT "/empty", 0, buf, &len, &st), "get after set null");
    EXPECT(len == -1, "data set to null comes back with length -1, got %d", len);
    return 1;
}

static int t_large_data(void) {
    zhandle_t *zh = connect_zk(NULL);
    EXPECT(zh, "connect");
    int n = 512 * 1024;
    char *data = malloc(n), *back = malloc(n + 1);
    for (int i = 0; i < n; i++) data[i] = (char)(i * 31);
    OK(zoo_create(zh, ROOT "/big", data, n, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), "create 512 KiB");
    int len = n + 1;
    struct Stat st;
    OK(zoo_get(zh, ROOT "/big", 0, back, &len, &st), "get 512 KiB");
    EXPECT(len == n && !memcmp(data, back, n), "512 KiB round trip (len %d)", len);
    /* A buffer smaller than the data gets the first bytes. */
    len = 10;
    OK(zoo_get(zh, ROOT "/big", 0, back, &len, &st), "get into a small buffer");
    EXPECT(len == 10 && st.dataLength == n, "truncated get len %d dataLength %d", len, st.dataLength);
    free(data);
    free(back);
    return 1;
}

static int t_children(void) {
    zhandle_t *zh = connect_zk(NULL);
    EXPECT(zh, "connect");
    OK(zoo_create(zh, ROOT "/kids", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), "create parent");
    const char *names[] = {"b", "a", "c"};
    for (int i = 0; i < 3; i++) {
        char p[128];
        snprintf(p, sizeof p, ROOT "/kids/%s", names[i]);
        OK(zoo_create(zh, p, "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), "create child");
    }
    struct String_vector v;
    struct Stat st;
    OK(zoo_get_children2(zh, ROOT "/kids", 0, &v, &st), "get_children2");
    EXPECT(v.count == 3, "3 children, got %d", v.count);
    qsort(v.data, v.count, sizeof(char *), cmp_str);
    EXPECT(!strcmp(v.data[0], "a") && !strcmp(v.data[1], "b") && !strcmp(v.data[2], "c"), "children names");
    deallocate_String_vector(&v);
    EXPECT(st.numChildren == 3 && st.cversion == 3, "parent stat numChildren %d cversion %d", st.numChildren, st.cversion);
    OK(zoo_delete(zh, ROOT "/kids/b", -1), "delete child");
    OK(zoo_get_children2(zh, ROOT "/kids", 0, &v, &st), "get_children2 after delete");
    deallocate_String_vector(&v);
    EXPECT(st.numChildren == 2, "after a delete: numChildren %d", st.numChildren);
    EXPECT(st.pzxid > st.czxid, "pzxid moved");
    OK(zoo_get_children(zh, "/", 0, &v), "children of /");
    int has_zk = 0;
    for (int i = 0; i < v.count; i++) if (!strcmp(v.data[i], "zookeeper")) has_zk = 1;
    deallocate_String_vector(&v);
    EXPECT(has_zk, "/zookeeper listed under /");
    EXPECT_RC(ZNONODE, zoo_get_children(zh, ROOT "/nokids", 0, &v), "children of a missing node");
    return 1;
}

static int t_sequential(void) {
    zhandle_t *zh = connect_zk(NULL);
    EXPECT(zh, "connect");
    char p1[256], p2[256], p3[256];
    OK(zoo_create(zh, ROOT "/seq", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), "create parent");
    OK(zoo_create(zh, ROOT "/seq/s-", "1", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_SEQUENTIAL, p1, sizeof p1), "sequential 1");
    OK(zoo_create(zh, ROOT "/seq/s-", "2", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_SEQUENTIAL, p2, sizeof p2), "sequential 2");
    EXPECT(!strcmp(p1, ROOT "/seq/s-0000000000"), "first name %s", p1);
    EXPECT(!strcmp(p2, ROOT "/seq/s-0000000001"), "second name %s", p2);
    OK(zoo_delete(zh, p2, -1), "delete");
    /* The counter counts creates only: a delete does not advance it. */
    OK(zoo_create(zh, ROOT "/seq/s-", "3", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_SEQUENTIAL, p3, sizeof p3), "sequential 3");
    EXPECT(!strcmp(p3, ROOT "/seq/s-0000000002"), "name after a delete %s", p3);
    OK(zoo_create(zh, ROOT "/seq/", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_SEQUENTIAL, p3, sizeof p3), "sequential with an empty name");
    EXPECT(!strcmp(p3, ROOT "/seq/0000000003"), "empty-prefix name %s", p3);
    return 1;
}

static int t_ephemeral(void) {
    struct evq *qa;
    zhandle_t *a = connect_zk(&qa), *b = connect_zk(NULL);
    EXPECT(a && b, "connect");
    char p[256];
    struct Stat st;
    OK(zoo_create(b, ROOT "/eph", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), "create parent");
    OK(zoo_create(a, ROOT "/eph/e", "x", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, NULL, 0), "create ephemeral");
    OK(zoo_create(a, ROOT "/eph/es-", "x", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL_SEQUENTIAL, p, sizeof p), "create ephemeral sequential");
    EXPECT(!strcmp(p, ROOT "/eph/es-0000000001"), "ephemeral sequential name %s", p);
    OK(zoo_exists(b, ROOT "/eph/e", 0, &st), "exists from the other session");
    EXPECT(st.ephemeralOwner == zoo_client_id(a)->client_id, "ephemeralOwner 0x%" PRIx64 " vs session 0x%" PRIx64,
           (uint64_t)st.ephemeralOwner, (uint64_t)zoo_client_id(a)->client_id);
    EXPECT_RC(ZNOCHILDRENFOREPHEMERALS, zoo_create(a, ROOT "/eph/e/kid", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0),
              "child of an ephemeral");
    struct evq *qb = evq_new();
    OK(zoo_wexists(b, ROOT "/eph/e", evq_watcher, qb, &st), "watch the ephemeral");
    close_handle(a);
    int type;
    char path[256];
    EXPECT(evq_pop(qb, 10000, &type, path, sizeof path, 1), "no event when the owner closed");
    EXPECT(type == ZOO_DELETED_EVENT && !strcmp(path, ROOT "/eph/e"), "event %s %s", evname(type), path);
    EXPECT_RC(ZNONODE, zoo_exists(b, p, 0, &st), "ephemeral sequential gone after close");
    return 1;
}

static int t_container_and_ttl(void) {
    zhandle_t *zh = connect_zk(NULL);
    EXPECT(zh, "connect");
    struct Stat st;
    char p[256];
    OK(zoo_create(zh, ROOT "/box", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_CONTAINER, NULL, 0), "create container");
    OK(zoo_create(zh, ROOT "/box/item", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), "create child");
    OK(zoo_delete(zh, ROOT "/box/item", -1), "delete the only child");
    EXPECT(wait_gone(zh, ROOT "/box", 20000), "container not removed within 20 s after its last child went");

    OK(zoo_create2_ttl(zh, ROOT "/ttl", "t", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_WITH_TTL, 1000, p, sizeof p, &st), "create TTL node");
    OK(zoo_create_ttl(zh, ROOT "/ttls-", "t", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_SEQUENTIAL_WITH_TTL, 1000, p, sizeof p), "create sequential TTL node");
    EXPECT(!strncmp(p, ROOT "/ttls-", strlen(ROOT "/ttls-")) && strlen(p) == strlen(ROOT "/ttls-") + 10, "sequential TTL name %s", p);
    EXPECT_RC(ZBADARGUMENTS, zoo_create_ttl(zh, ROOT "/ttl0", "t", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_WITH_TTL, 0, NULL, 0), "TTL 0");
    EXPECT_RC(ZBADARGUMENTS, zoo_create_ttl(zh, ROOT "/ttlbad", "t", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, 1000, NULL, 0), "TTL with a non-TTL mode");
    EXPECT(wait_gone(zh, ROOT "/ttl", 20000), "TTL node not removed within 20 s of expiring");
    EXPECT(wait_gone(zh, p, 5000), "sequential TTL node not removed");
    return 1;
}

/* Stat.cversion as clients see it: ZooKeeper stores the number of child creates and reports
 * 2 * creates - numChildren, i.e. creates + deletes (DataNode.copyStat). */
static int t_stat_cversion(void) {
    zhandle_t *zh = connect_zk(NULL);
    EXPECT(zh, "connect");
    struct Stat st;
    struct String_vector v;
    char p[256];
    OK(zoo_create(zh, ROOT "/cv", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), "create parent");
    OK(zoo_create(zh, ROOT "/cv/a", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), "create a");
    OK(zoo_create(zh, ROOT "/cv/b", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), "create b");
    OK(zoo_exists(zh, ROOT "/cv", 0, &st), "stat");
    EXPECT(st.cversion == 2, "cversion after 2 creates: %d", st.cversion);
    OK(zoo_delete(zh, ROOT "/cv/a", -1), "delete a");
    OK(zoo_exists(zh, ROOT "/cv", 0, &st), "stat");
    EXPECT(st.cversion == 3, "cversion after 2 creates and 1 delete: %d (ZooKeeper: 3)", st.cversion);
    OK(zoo_create(zh, ROOT "/cv/s-", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_SEQUENTIAL, p, sizeof p), "sequential");
    EXPECT(!strcmp(p, ROOT "/cv/s-0000000002"), "sequential name %s", p);
    OK(zoo_get_children2(zh, ROOT "/cv", 0, &v, &st), "get_children2");
    deallocate_String_vector(&v);
    EXPECT(st.cversion == 4 && st.numChildren == 2, "cversion after 3 creates and 1 delete: %d (ZooKeeper: 4)", st.cversion);
    zoo_op_t ops[2];
    zoo_op_result_t res[2];
    zoo_delete_op_init(&ops[0], ROOT "/cv/b", -1);
    zoo_delete_op_init(&ops[1], p, -1);
    OK(zoo_multi(zh, 2, ops, res), "multi deleting both children");
    OK(zoo_exists(zh, ROOT "/cv", 0, &st), "stat");
    EXPECT(st.cversion == 6 && st.numChildren == 0, "cversion after 3 creates and 3 deletes: %d (ZooKeeper: 6)", st.cversion);
    return 1;
}

/* Stat.ephemeralOwner as clients see it: ZooKeeper shows 0 for containers and TTL nodes. */
static int t_stat_owner(void) {
    zhandle_t *zh = connect_zk(NULL);
    EXPECT(zh, "connect");
    struct Stat st;
    OK(zoo_create(zh, ROOT "/own", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), "create parent");
    OK(zoo_create2(zh, ROOT "/own/eph", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, NULL, 0, &st), "create ephemeral");
    EXPECT(st.ephemeralOwner == zoo_client_id(zh)->client_id, "ephemeralOwner of an ephemeral 0x%" PRIx64, (uint64_t)st.ephemeralOwner);
    OK(zoo_create2(zh, ROOT "/own/cont", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_CONTAINER, NULL, 0, &st), "create container");
    EXPECT(st.ephemeralOwner == 0, "create2 reply: ephemeralOwner of a container 0x%" PRIx64 " (ZooKeeper: 0)", (uint64_t)st.ephemeralOwner);
    OK(zoo_exists(zh, ROOT "/own/cont", 0, &st), "exists container");
    EXPECT(st.ephemeralOwner == 0, "exists: ephemeralOwner of a container 0x%" PRIx64 " (ZooKeeper: 0)", (uint64_t)st.ephemeralOwner);
    OK(zoo_create2_ttl(zh, ROOT "/own/ttl", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_WITH_TTL, 60000, NULL, 0, &st), "create TTL");
    EXPECT(st.ephemeralOwner == 0, "create2 reply: ephemeralOwner of a TTL node 0x%" PRIx64 " (ZooKeeper: 0)", (uint64_t)st.ephemeralOwner);
    OK(zoo_exists(zh, ROOT "/own/ttl", 0, &st), "exists TTL");
    EXPECT(st.ephemeralOwner == 0, "exists: ephemeralOwner of a TTL node 0x%" PRIx64 " (ZooKeeper: 0)", (uint64_t)st.ephemeralOwner);
    return 1;
}

static int t_watches(void) {
    zhandle_t *a = connect_zk(NULL), *b = connect_zk(NULL);
    EXPECT(a && b, "connect");
    struct evq *q = evq_new();
    struct Stat st;
    char buf[64], path[256];
    int len, type;
    OK(zoo_create(b, ROOT "/w", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), "create parent");
    EXPECT_RC(ZNONODE, zoo_wexists(a, ROOT "/w/x", evq_watcher, q, &st), "wexists on a missing node");
    OK(zoo_create(b, ROOT "/w/x", "1", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), "create");
    EXPECT(evq_pop(q, 10000, &type, path, sizeof path, 1), "no created event");
    EXPECT(type == ZOO_CREATED_EVENT && !strcmp(path, ROOT "/w/x"), "got %s %s", evname(type), path);
    len = sizeof buf;
    OK(zoo_wget(a, ROOT "/w/x", evq_watcher, q, buf, &len, &st), "wget");
    OK(zoo_set(b, ROOT "/w/x", "2", 1, -1), "set");
    EXPECT(evq_pop(q, 10000, &type, path, sizeof path, 1), "no changed event");
    EXPECT(type == ZOO_CHANGED_EVENT && !strcmp(path, ROOT "/w/x"), "got %s %s", evname(type), path);
    struct String_vector v;
    OK(zoo_wget_children(a, ROOT "/w", evq_watcher, q, &v), "wget_children");
    deallocate_String_vector(&v);
    OK(zoo_create(b, ROOT "/w/y", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), "create sibling");
    EXPECT(evq_pop(q, 10000, &type, path, sizeof path, 1), "no child event");
    EXPECT(type == ZOO_CHILD_EVENT && !strcmp(path, ROOT "/w"), "got %s %s", evname(type), path);
    OK(zoo_wexists(a, ROOT "/w/y", evq_watcher, q, &st), "wexists existing");
    OK(zoo_wget_children2(a, ROOT "/w", evq_watcher, q, &v, &st), "wget_children2");
    deallocate_String_vector(&v);
    OK(zoo_delete(b, ROOT "/w/y", -1), "delete");
    /* Both the node's watch and the parent's child watch fire. */
    int got_del = 0, got_child = 0;
    for (int i = 0; i < 2; i++) {
        EXPECT(evq_pop(q, 10000, &type, path, sizeof path, 1), "missing event %d after delete", i + 1);
        if (type == ZOO_DELETED_EVENT && !strcmp(path, ROOT "/w/y")) got_del = 1;
        if (type == ZOO_CHILD_EVENT && !strcmp(path, ROOT "/w")) got_child = 1;
    }
    EXPECT(got_del && got_child, "delete events: deleted %d child %d", got_del, got_child);
    /* One-shot: nothing more. */
    OK(zoo_set(b, ROOT "/w/x", "3", 1, -1), "set again");
    EXPECT(!evq_pop(q, 700, &type, path, sizeof path, 1), "a fired watch fired again: %s %s", evname(type), path);
    /* The default watcher gets watches set with watch=1. */
    struct evq *qd;
    zhandle_t *c = connect_zk(&qd);
    EXPECT(c, "connect c");
    len = sizeof buf;
    OK(zoo_get(c, ROOT "/w/x", 1, buf, &len, &st), "get with the default watcher");
    OK(zoo_set(b, ROOT "/w/x", "4", 1, -1), "set");
    EXPECT(evq_pop(qd, 10000, &type, path, sizeof path, 1), "no event on the default watcher");
    EXPECT(type == ZOO_CHANGED_EVENT && !strcmp(path, ROOT "/w/x"), "default watcher got %s %s", evname(type), path);
    /* removeWatches. */
    struct evq *qr = evq_new();
    len = sizeof buf;
    OK(zoo_wget(a, ROOT "/w/x", evq_watcher, qr, buf, &len, &st), "wget to remove");
    OK(zoo_remove_watches(a, ROOT "/w/x", ZWATCHTYPE_DATA, evq_watcher, qr, 0), "remove_watches");
    /* The C client removes the watcher without calling it (the Java client sends DataWatchRemoved). */
    OK(zoo_set(b, ROOT "/w/x", "5", 1, -1), "set after removal");
    EXPECT(!evq_pop(qr, 700, &type, path, sizeof path, 1), "a removed watch fired: %s %s", evname(type), path);
    EXPECT_RC(ZNOWATCHER, zoo_remove_watches(a, ROOT "/w/x", ZWATCHTYPE_DATA, evq_watcher, qr, 0), "remove a watch that is gone");
    return 1;
}

static int t_multi(void) {
    zhandle_t *zh = connect_zk(NULL);
    EXPECT(zh, "connect");
    char buf[64], p0[256], p1[256];
    int len;
    struct Stat st, sst;
    OK(zoo_create(zh, ROOT "/m", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), "create parent");
    OK(zoo_create(zh, ROOT "/m/old", "o", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), "create old");
    zoo_op_t ops[5];
    zoo_op_result_t res[5];
    zoo_create_op_init(&ops[0], ROOT "/m/new", "n", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, p0, sizeof p0);
    zoo_create_op_init(&ops[1], ROOT "/m/s-", "s", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_SEQUENTIAL, p1, sizeof p1);
    zoo_set_op_init(&ops[2], ROOT "/m/new", "n2", 2, 0, &sst);
    zoo_check_op_init(&ops[3], ROOT "/m/new", 1);
    zoo_delete_op_init(&ops[4], ROOT "/m/old", 0);
    OK(zoo_multi(zh, 5, ops, res), "multi");
    for (int i = 0; i < 5; i++) EXPECT(res[i].err == ZOK, "op %d result %d", i, res[i].err);
    EXPECT(!strcmp(p0, ROOT "/m/new"), "multi create path %s", p0);
    EXPECT(!strcmp(p1, ROOT "/m/s-0000000002"), "multi sequential path %s", p1);
    EXPECT(sst.version == 1, "multi set stat version %d", sst.version);
    len = sizeof buf;
    OK(zoo_get(zh, ROOT "/m/new", 0, buf, &len, &st), "get after multi");
    EXPECT(len == 2 && !memcmp(buf, "n2", 2), "data after multi");
    EXPECT_RC(ZNONODE, zoo_exists(zh, ROOT "/m/old", 0, &st), "deleted by multi");

    /* A failing multi changes nothing and reports each op's result. */
    zoo_create_op_init(&ops[0], ROOT "/m/x", "x", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, p0, sizeof p0);
    zoo_delete_op_init(&ops[1], ROOT "/m/new", -1);
    zoo_check_op_init(&ops[2], ROOT "/m/s-0000000002", 9);
    zoo_set_op_init(&ops[3], ROOT "/m/s-0000000002", "z", 1, -1, &sst);
    EXPECT_RC(ZBADVERSION, zoo_multi(zh, 4, ops, res), "failing multi");
    EXPECT(res[0].err == ZOK && res[1].err == ZOK && res[2].err == ZBADVERSION && res[3].err == ZRUNTIMEINCONSISTENCY,
           "per-op results %d %d %d %d (ZooKeeper: 0 0 -103 -2)", res[0].err, res[1].err, res[2].err, res[3].err);
    EXPECT_RC(ZNONODE, zoo_exists(zh, ROOT "/m/x", 0, &st), "failed multi created nothing");
    OK(zoo_exists(zh, ROOT "/m/new", 0, &st), "failed multi deleted nothing");
    /* A multi whose first op fails. */
    zoo_create_op_init(&ops[0], ROOT "/m/new", "x", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, p0, sizeof p0);
    zoo_create_op_init(&ops[1], ROOT "/m/y", "y", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, p1, sizeof p1);
    EXPECT_RC(ZNODEEXISTS, zoo_multi(zh, 2, ops, res), "multi creating an existing node");
    EXPECT(res[0].err == ZNODEEXISTS && res[1].err == ZRUNTIMEINCONSISTENCY, "per-op results %d %d", res[0].err, res[1].err);
    /* An empty multi. */
    OK(zoo_multi(zh, 0, ops, res), "empty multi");
    return 1;
}

static void auth_done(int rc, const void *data) { *(volatile int *)data = rc == ZOK ? 1 : -1; }

static int t_acl_and_auth(void) {
    zhandle_t *alice = connect_zk(NULL), *anon = connect_zk(NULL), *root = connect_zk(NULL);
    EXPECT(alice && anon && root, "connect");
    volatile int done = 0, done2 = 0;
    OK(zoo_add_auth(alice, "digest", "alice:secret", 12, auth_done, (const void *)&done), "add_auth");
    OK(zoo_add_auth(root, "digest", "super:test", 10, auth_done, (const void *)&done2), "add_auth super");
    for (int i = 0; i < 100 && (!done || !done2); i++) msleep(50);
    EXPECT(done == 1 && done2 == 1, "auth completions %d %d", done, done2);
    char buf[64];
    int len;
    struct Stat st;
    struct ACL_vector acl;
    OK(zoo_create(alice, ROOT "/secret", "s", 1, &ZOO_CREATOR_ALL_ACL, ZOO_PERSISTENT, NULL, 0), "create with the creator ACL");
    OK(zoo_get_acl(alice, ROOT "/secret", &acl, &st), "get_acl");
    EXPECT(acl.count == 1 && !strcmp(acl.data[0].id.scheme, "digest") && !strncmp(acl.data[0].id.id, "alice:", 6) && acl.data[0].perms == ZOO_PERM_ALL,
           "ACL %s:%s perms %d", acl.count ? acl.data[0].id.scheme : "-", acl.count ? acl.data[0].id.id : "-", acl.count ? acl.data[0].perms : -1);
    EXPECT(!strcmp(acl.data[0].id.id, "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="), "digest of alice:secret %s", acl.data[0].id.id);
    deallocate_ACL_vector(&acl);
    len = sizeof buf;
    EXPECT_RC(ZNOAUTH, zoo_get(anon, ROOT "/secret", 0, buf, &len, &st), "anonymous get");
    EXPECT_RC(ZNOAUTH, zoo_set(anon, ROOT "/secret", "x", 1, -1), "anonymous set");
    EXPECT_RC(ZNOAUTH, zoo_get_acl(anon, ROOT "/secret", &acl, &st), "anonymous get_acl");
    len = sizeof buf;
    OK(zoo_get(root, ROOT "/secret", 0, buf, &len, &st), "super user get");
    EXPECT_RC(ZINVALIDACL, zoo_create(anon, ROOT "/bad", "", 0, &ZOO_CREATOR_ALL_ACL, ZOO_PERSISTENT, NULL, 0), "creator ACL without credentials");
    EXPECT_RC(ZBADVERSION, zoo_set_acl(alice, ROOT "/secret", 4, &ZOO_OPEN_ACL_UNSAFE), "set_acl with a wrong aversion");
    OK(zoo_set_acl(alice, ROOT "/secret", 0, &ZOO_OPEN_ACL_UNSAFE), "set_acl");
    len = sizeof buf;
    OK(zoo_get(anon, ROOT "/secret", 0, buf, &len, &st), "anonymous get after opening the ACL");
    EXPECT(st.aversion == 1, "aversion %d", st.aversion);
    OK(zoo_create(anon, ROOT "/ro", "r", 1, &ZOO_READ_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0), "create read-only");
    EXPECT_RC(ZNOAUTH, zoo_set(anon, ROOT "/ro", "x", 1, -1), "set on a read-only node");
    /* An ip ACL. */
    struct ACL ipacl = {ZOO_PERM_ALL, {"ip", "127.0.0.1"}};
    struct ACL_vector ipv = {1, &ipacl};
    OK(zoo_create(anon, ROOT "/iponly", "i", 1, &ipv, ZOO_PERSISTENT, NULL, 0), "create with an ip ACL");
    len = sizeof buf;
    OK(zoo_get(anon, ROOT "/iponly", 0, buf, &len, &st), "get allowed by the ip ACL");
    struct ACL otheracl = {ZOO_PERM_ALL, {"ip", "10.1.2.3"}};
    struct ACL_vector otherv = {1, &otheracl};
    OK(zoo_create(anon, ROOT "/otherip", "i", 1, &otherv, ZOO_PERSISTENT, NULL, 0), "create with another ip ACL");
    len = sizeof buf;
    EXPECT_RC(ZNOAUTH, zoo_get(anon, ROOT "/otherip", 0, buf, &len, &st), "get denied by the ip ACL");
    /* Bad credentials: an unknown scheme fails authentication and closes the session. */
    struct evq *qbad;
    zhandle_t *bad = connect_zk(&qbad);
    EXPECT(bad, "connect bad");
    volatile int done3 = 0;
    zoo_add_auth(bad, "nosuchscheme", "x", 1, auth_done, (const void *)&done3);
    EXPECT(evq_wait_state(qbad, ZOO_AUTH_FAILED_STATE, 10000), "no AUTH_FAILED state for an unknown auth scheme");
    return 1;
}

static void sync_done(int rc, const char *value, const void *data) { (void)value; *(volatile int *)data = rc == ZOK ? 1 : (rc < 0 ? rc : -999); }

static int t_sync_and_config(void) {
    zhandle_t *zh = connect_zk(NULL);
    EXPECT(zh, "connect");
    volatile int done = 0;
    OK(zoo_async(zh, "/", sync_done, (const void *)&done), "zoo_async (sync)");
    for (int i = 0; i < 100 && !done; i++) msleep(50);
    EXPECT(done == 1, "sync completion %d", done);
    char buf[1024];
    int len = sizeof buf;
    struct Stat st;
    OK(zoo_getconfig(zh, 0, buf, &len, &st), "getconfig");
    len = sizeof buf;
    OK(zoo_get(zh, "/zookeeper/config", 0, buf, &len, &st), "get /zookeeper/config");
    EXPECT_RC(ZBADARGUMENTS, zoo_delete(zh, "/zookeeper", -1), "delete /zookeeper");
    EXPECT_RC(ZBADARGUMENTS, zoo_delete(zh, "/", -1), "delete /");
    return 1;
}

/* A loopback TCP relay in front of the server, so a test can cut one handle off and keep it
 * from reconnecting while the server sees nothing but a dropped connection. */
struct relay {
    int lfd, port, target_port;
    volatile int refuse, stop;
    int pairs[32][2];
    int npairs;
    pthread_t th;
};

static void relay_drop_all(struct relay *r) {
    for (int i = 0; i < r->npairs; i++) { close(r->pairs[i][0]); close(r->pairs[i][1]); }
    r->npairs = 0;
}

static void *relay_main(void *arg) {
    struct relay *r = arg;
    char buf[65536];
    while (!r->stop) {
        if (r->refuse) relay_drop_all(r);
        struct pollfd pf[1 + 64];
        int n = 0;
        pf[n].fd = r->lfd; pf[n].events = POLLIN; n++;
        for (int i = 0; i < r->npairs; i++) {
            pf[n].fd = r->pairs[i][0]; pf[n].events = POLLIN; n++;
            pf[n].fd = r->pairs[i][1]; pf[n].events = POLLIN; n++;
        }
        /* Only the pairs in this poll have revents; a pair accepted below waits for the next
         * poll (reading it on stale revents would block the relay thread). */
        int polled = r->npairs;
        if (poll(pf, n, 20) <= 0) continue;
        if (pf[0].revents & POLLIN) {
            int c = accept(r->lfd, NULL, NULL);
            if (c >= 0) {
                struct sockaddr_in sa = {0};
                sa.sin_family = AF_INET;
                sa.sin_port = htons(r->target_port);
                sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                int u = socket(AF_INET, SOCK_STREAM, 0);
                if (r->refuse || r->npairs >= 32 || connect(u, (struct sockaddr *)&sa, sizeof sa) != 0) { close(c); close(u); }
                else { r->pairs[r->npairs][0] = c; r->pairs[r->npairs][1] = u; r->npairs++; }
            }
        }
        for (int i = 0, k = 1; i < polled; i++, k += 2) {
            int dead = 0;
            for (int side = 0; side < 2 && !dead; side++) {
                if (!(pf[k + side].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                ssize_t got = read(r->pairs[i][side], buf, sizeof buf);
                if (got <= 0) { dead = 1; break; }
                ssize_t off = 0;
                while (off < got) {
                    ssize_t w = write(r->pairs[i][1 - side], buf + off, got - off);
                    if (w <= 0) { dead = 1; break; }
                    off += w;
                }
            }
            if (dead) {
                close(r->pairs[i][0]); close(r->pairs[i][1]);
                r->pairs[i][0] = r->pairs[r->npairs - 1][0];
                r->pairs[i][1] = r->pairs[r->npairs - 1][1];
                r->npairs--;
                break; /* the poll array no longer matches; poll again */
            }
        }
    }
    relay_drop_all(r);
    close(r->lfd);
    return NULL;
}

static int relay_start(struct relay *r) {
    memset(r, 0, sizeof *r);
    const char *colon = strrchr(hosts, ':');
    if (!colon || strchr(hosts, ',')) return 0;
    r->target_port = atoi(colon + 1);
    r->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(r->lfd, (struct sockaddr *)&sa, sizeof sa) || listen(r->lfd, 16) || getsockname(r->lfd, (struct sockaddr *)&sa, &sl)) return 0;
    r->port = ntohs(sa.sin_port);
    return pthread_create(&r->th, NULL, relay_main, r) == 0;
}

static int t_session_expiry(void) {
    zhandle_t *b = connect_zk(NULL);
    EXPECT(b, "connect");
    /* Static: should a check below fail and return early, the relay thread keeps running on
     * memory that stays valid (it only ever closes its own sockets). */
    static struct relay r;
    EXPECT(relay_start(&r), "relay for %s", hosts);
    char via[64];
    snprintf(via, sizeof via, "127.0.0.1:%d", r.port);
    const char *direct = hosts;
    hosts = via;
    struct evq *qa;
    zhandle_t *a = connect_zk(&qa);
    hosts = direct;
    EXPECT(a, "connect through the relay");
    struct Stat st;
    OK(zoo_create(a, ROOT "/expiring", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, NULL, 0), "create ephemeral");
    clientid_t cid = *zoo_client_id(a);
    /* Cut the first handle off and resume its session on a second handle: the session and its
     * ephemeral are still there.  Closing the second handle then ends the session while the
     * first handle cannot reach the server. */
    r.refuse = 1;
    EXPECT(evq_wait_state(qa, ZOO_CONNECTING_STATE, 10000), "the first handle did not notice the cut");
    struct evq *qk;
    zhandle_t *killer = connect_q(&qk, &cid);
    EXPECT(killer, "second handle");
    EXPECT(evq_wait_state(qk, ZOO_CONNECTED_STATE, 10000), "second handle did not resume the session");
    EXPECT(zoo_client_id(killer)->client_id == cid.client_id, "second handle has another session");
    OK(zoo_exists(killer, ROOT "/expiring", 0, &st), "the ephemeral is kept when the session resumes");
    EXPECT(st.ephemeralOwner == cid.client_id, "ephemeralOwner after resuming");
    OK(zoo_create(killer, ROOT "/expiring2", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, NULL, 0), "create an ephemeral on the resumed session");
    close_handle(killer);
    EXPECT(wait_gone(b, ROOT "/expiring", 10000), "the closed session's ephemeral is still there");
    EXPECT(wait_gone(b, ROOT "/expiring2", 10000), "the closed session's second ephemeral is still there");
    /* Let the first handle back in: its session is gone. */
    r.refuse = 0;
    EXPECT(evq_wait_state(qa, ZOO_EXPIRED_SESSION_STATE, 20000), "the first handle never saw its session expire");
    EXPECT(zoo_state(a) == ZOO_EXPIRED_SESSION_STATE, "state %d", zoo_state(a));
    EXPECT(zoo_create(a, ROOT "/after", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0) == ZINVALIDSTATE, "an expired handle refuses requests");
    close_handle(a);
    r.stop = 1;
    pthread_join(r.th, NULL);
    /* Resuming with a wrong password is refused as an expired session. */
    clientid_t wrong = *zoo_client_id(b);
    wrong.passwd[0] ^= 0x5a;
    struct evq *qw;
    zhandle_t *w = connect_q(&qw, &wrong);
    EXPECT(w, "handle with a wrong password");
    EXPECT(evq_wait_state(qw, ZOO_EXPIRED_SESSION_STATE, 10000), "a wrong session password was not refused");
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s HOST:PORT [check ...]\n", argv[0]);
        return 2;
    }
    hosts = argv[1];
    selected = argv + 2;
    selected_count = argc - 2;
    /* ZKC_LOG=info|debug makes the client library chattier (on stderr). */
    const char *lvl = getenv("ZKC_LOG");
    zoo_set_debug_level(!lvl ? ZOO_LOG_LEVEL_WARN : !strcmp(lvl, "debug") ? ZOO_LOG_LEVEL_DEBUG : ZOO_LOG_LEVEL_INFO);
    zoo_set_log_stream(stderr);
    zoo_deterministic_conn_order(1);
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* Fresh root, removed as the super user. */
    zhandle_t *zh = connect_zk(NULL);
    if (!zh) { printf("FAIL setup: cannot connect to %s\n", hosts); return 1; }
    volatile int done = 0;
    zoo_add_auth(zh, "digest", "super:test", 10, auth_done, (const void *)&done);
    for (int i = 0; i < 100 && !done; i++) msleep(50);
    int rc = delete_tree(zh, ROOT);
    if (rc == ZOK) rc = zoo_create(zh, ROOT, "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
    if (rc != ZOK) { printf("FAIL setup: %s\n", zerror(rc)); return 1; }
    close_all();

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    run("connect", t_connect);
    run("crud", t_crud);
    run("null_and_empty_data", t_null_and_empty_data);
    run("large_data", t_large_data);
    run("children", t_children);
    run("sequential", t_sequential);
    run("ephemeral", t_ephemeral);
    run("container_and_ttl", t_container_and_ttl);
    run("stat_cversion_counts_deletes", t_stat_cversion);
    run("stat_ephemeral_owner_container_ttl", t_stat_owner);
    run("watches", t_watches);
    run("multi", t_multi);
    run("acl_and_auth", t_acl_and_auth);
    run("sync_and_config", t_sync_and_config);
    run("session_expiry", t_session_expiry);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("c-client: %d passed, %d failed (%ld s)%s%s\n", passed, failed, (long)(t1.tv_sec - t0.tv_sec),
           failed ? ": " : "", failed_names);
    return failed || !passed ? 1 : 0;
}
