// Apache Curator (Debian's libcurator-*-java 5.4.0 on its zookeeper 3.8 client) against a
// ZooKeeper-protocol server: each check prints "PASS name" or "FAIL name: why"; the program
// exits 1 if any check failed.  Plain javac + java, no build tool: see tests/curator/run.sh.
//
//   java -cp "$CP" CuratorCompat 127.0.0.1:2181 [check ...]
//
// The checks assume the server runs with TTL nodes enabled (extendedTypesEnabled) and that
// containers and expired TTL nodes are removed within about 20 s (ZooKeeper: run it with
// -Dznode.container.checkIntervalMs=1000).  Everything is created under /curator-compat,
// which is deleted first.

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Pattern;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.api.ACLProvider;
import org.apache.curator.framework.api.CuratorEvent;
import org.apache.curator.framework.api.CuratorEventType;
import org.apache.curator.framework.api.transaction.CuratorOp;
import org.apache.curator.framework.api.transaction.CuratorTransactionResult;
import org.apache.curator.framework.api.transaction.OperationType;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.barriers.DistributedBarrier;
import org.apache.curator.framework.recipes.barriers.DistributedDoubleBarrier;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.cache.NodeCache;
import org.apache.curator.framework.recipes.cache.PathChildrenCache;
import org.apache.curator.framework.recipes.cache.PathChildrenCacheEvent;
import org.apache.curator.framework.recipes.cache.TreeCache;
import org.apache.curator.framework.recipes.cache.TreeCacheEvent;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderSelector;
import org.apache.curator.framework.recipes.leader.LeaderSelectorListenerAdapter;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2;
import org.apache.curator.framework.recipes.locks.Lease;
import org.apache.curator.framework.recipes.nodes.PersistentNode;
import org.apache.curator.framework.recipes.nodes.PersistentTtlNode;
import org.apache.curator.framework.recipes.queue.DistributedQueue;
import org.apache.curator.framework.recipes.queue.QueueBuilder;
import org.apache.curator.framework.recipes.queue.QueueConsumer;
import org.apache.curator.framework.recipes.queue.QueueSerializer;
import org.apache.curator.framework.recipes.shared.SharedCount;
import org.apache.curator.framework.recipes.shared.SharedCountListener;
import org.apache.curator.framework.recipes.shared.SharedCountReader;
import org.apache.curator.framework.recipes.shared.VersionedValue;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.retry.RetryNTimes;
import org.apache.curator.utils.CloseableUtils;
import org.apache.curator.utils.ZKPaths;
import org.apache.curator.x.discovery.ServiceCache;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.curator.x.discovery.ServiceProvider;
import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.ClientInfo;
import org.apache.zookeeper.data.Stat;

public final class CuratorCompat {
    static final String ROOT = "/curator-compat";
    static final long CHECK_TIMEOUT_S = 45;
    /**
     * ZooKeeper keeps 0x8000000000000000 (containers) and 0xFF00000000000000 | ttl (TTL nodes) in
     * its own copy of ephemeralOwner, but a client's Stat shows 0 for both
     * (DataNode.copyStat -> getClientEphemeralOwner): only real ephemerals show an owner.
     */
    static final long CLIENT_OWNER_OF_CONTAINER_OR_TTL = 0L;

    static String connect;
    static final List<String> failed = new ArrayList<>();
    static int passed;
    static final List<AutoCloseableEx> toClose = Collections.synchronizedList(new ArrayList<>());

    interface Body { void run() throws Exception; }
    interface Cond { boolean get() throws Exception; }
    interface AutoCloseableEx { void close() throws Exception; }

    // ------------------------------------------------------------------ helpers

    static CuratorFramework client() throws Exception { return client(15000); }

    static CuratorFramework client(int sessionMs) throws Exception {
        return start(CuratorFrameworkFactory.builder().sessionTimeoutMs(sessionMs));
    }

    static CuratorFramework start(CuratorFrameworkFactory.Builder b) throws Exception {
        CuratorFramework c = b.connectString(connect).connectionTimeoutMs(10000)
                .retryPolicy(new ExponentialBackoffRetry(100, 10, 1000)).build();
        c.start();
        toClose.add(c::close);
        if (!c.blockUntilConnected(15, TimeUnit.SECONDS)) throw new AssertionError("client did not connect within 15 s");
        return c;
    }

    static <T extends java.io.Closeable> T closeLater(T t) { toClose.add(t::close); return t; }

    static byte[] b(String s) { return s.getBytes(StandardCharsets.UTF_8); }
    static String s(byte[] b) { return b == null ? null : new String(b, StandardCharsets.UTF_8); }
    static long sessionId(CuratorFramework c) throws Exception { return c.getZookeeperClient().getZooKeeper().getSessionId(); }

    static void expect(boolean cond, String what) { if (!cond) throw new AssertionError(what); }

    static void expectEq(Object expected, Object actual, String what) {
        if (!Objects.equals(expected, actual))
            throw new AssertionError(what + ": expected <" + expected + "> but got <" + actual + ">");
    }

    static void expectCode(KeeperException.Code code, Body body, String what) throws Exception {
        try {
            body.run();
        } catch (KeeperException e) {
            if (e.code() != code) throw new AssertionError(what + ": expected " + code + " but got " + e.code() + " (" + e.getMessage() + ")");
            return;
        }
        throw new AssertionError(what + ": expected " + code + " but the call succeeded");
    }

    static void waitFor(String what, long timeoutMs, Cond cond) throws Exception {
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (true) {
            if (cond.get()) return;
            if (System.currentTimeMillis() > deadline) throw new AssertionError("timed out after " + timeoutMs + " ms waiting for: " + what);
            Thread.sleep(50);
        }
    }

    static <T> T poll(BlockingQueue<T> q, long ms, String what) throws InterruptedException {
        T t = q.poll(ms, TimeUnit.MILLISECONDS);
        if (t == null) throw new AssertionError("nothing arrived within " + ms + " ms: " + what);
        return t;
    }

    static String hex(long v) { return String.format("0x%016x", v); }

    static void check(String name, Body body) {
        if (!selected(name)) return;
        long t0 = System.nanoTime();
        ExecutorService ex = Executors.newSingleThreadExecutor(r -> { Thread t = new Thread(r, "check-" + name); t.setDaemon(true); return t; });
        Future<?> f = ex.submit(() -> { body.run(); return null; });
        String err = null;
        try {
            f.get(CHECK_TIMEOUT_S, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            f.cancel(true);
            err = "timed out after " + CHECK_TIMEOUT_S + " s";
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            System.err.println("---- " + name + " failed:");
            c.printStackTrace();
            err = describe(c);
        } catch (InterruptedException e) {
            err = "interrupted";
        } finally {
            List<AutoCloseableEx> l;
            synchronized (toClose) { l = new ArrayList<>(toClose); toClose.clear(); }
            Collections.reverse(l);
            for (AutoCloseableEx c : l) { try { c.close(); } catch (Throwable ignored) { } }
            ex.shutdownNow();
        }
        long ms = (System.nanoTime() - t0) / 1_000_000;
        if (err == null) {
            passed++;
            System.out.printf("PASS %s (%d ms)%n", name, ms);
        } else {
            failed.add(name);
            System.out.printf("FAIL %s: %s (%d ms)%n", name, err.replace('\n', ' '), ms);
        }
        System.out.flush();
    }

    static String describe(Throwable c) {
        String where = "";
        for (StackTraceElement el : c.getStackTrace()) {
            if (el.getClassName().startsWith("CuratorCompat")) { where = " [at line " + el.getLineNumber() + "]"; break; }
        }
        if (c instanceof AssertionError) return c.getMessage() + where;
        if (c instanceof KeeperException) return "unexpected KeeperException " + ((KeeperException) c).code() + " path=" + ((KeeperException) c).getPath() + where;
        return "unexpected " + c + where;
    }

    static Set<String> only = new HashSet<>();
    static boolean selected(String name) { return only.isEmpty() || only.contains(name); }

    // ------------------------------------------------------------------ main

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: CuratorCompat host:port [check ...]");
            System.exit(2);
        }
        connect = args[0];
        only.addAll(Arrays.asList(args).subList(1, args.length));
        long t0 = System.currentTimeMillis();

        // Fresh root for this run.
        // The cleanup client authenticates as the super user ("super:test", the digest the test
        // servers are started with) so that it can delete nodes whose ACLs lock others out.
        try (CuratorFramework c = CuratorFrameworkFactory.builder().connectString(connect).sessionTimeoutMs(15000)
                .connectionTimeoutMs(10000).retryPolicy(new RetryNTimes(3, 500)).authorization("digest", b("super:test")).build()) {
            c.start();
            if (!c.blockUntilConnected(15, TimeUnit.SECONDS)) {
                System.out.println("FAIL setup: cannot connect to " + connect);
                System.exit(1);
            }
            if (c.checkExists().forPath(ROOT) != null) c.delete().deletingChildrenIfNeeded().forPath(ROOT);
            c.create().forPath(ROOT, new byte[0]);
        }

        check("crud", CuratorCompat::crud);
        check("background_and_namespace", CuratorCompat::backgroundAndNamespace);
        check("sequential_numbering", CuratorCompat::sequentialNumbering);
        check("ephemeral_sequential", CuratorCompat::ephemeralSequential);
        check("container", CuratorCompat::container);
        check("ttl", CuratorCompat::ttl);
        check("transaction", CuratorCompat::transaction);
        check("transaction_legacy_inTransaction", CuratorCompat::transactionLegacy);
        check("acl_and_auth", CuratorCompat::aclAndAuth);
        check("one_shot_watches", CuratorCompat::oneShotWatches);
        check("persistent_recursive_watch", CuratorCompat::persistentRecursiveWatch);
        check("zookeeper_3_6_plus_api", CuratorCompat::zookeeperExtras);
        check("who_am_i", CuratorCompat::whoAmI);
        check("stat_cversion_counts_deletes", CuratorCompat::statCversion);
        check("stat_ephemeral_owner_container_ttl", CuratorCompat::statOwnerOfContainerAndTtl);
        check("inter_process_mutex", CuratorCompat::mutex);
        check("inter_process_semaphore_v2", CuratorCompat::semaphore);
        check("inter_process_read_write_lock", CuratorCompat::readWriteLock);
        check("leader_latch", CuratorCompat::leaderLatch);
        check("leader_selector", CuratorCompat::leaderSelector);
        check("distributed_atomic_long", CuratorCompat::atomicLong);
        check("shared_count", CuratorCompat::sharedCount);
        check("distributed_barrier", CuratorCompat::barrier);
        check("distributed_double_barrier", CuratorCompat::doubleBarrier);
        check("distributed_queue", CuratorCompat::queue);
        check("node_cache", CuratorCompat::nodeCache);
        check("path_children_cache", CuratorCompat::pathChildrenCache);
        check("tree_cache", CuratorCompat::treeCache);
        check("curator_cache", CuratorCompat::curatorCache);
        check("persistent_node", CuratorCompat::persistentNode);
        check("persistent_ttl_node", CuratorCompat::persistentTtlNode);
        check("service_discovery", CuratorCompat::serviceDiscovery);
        check("session_expiry", CuratorCompat::sessionExpiry);

        System.out.printf("curator: %d passed, %d failed (%d s)%s%n", passed, failed.size(),
                (System.currentTimeMillis() - t0) / 1000, failed.isEmpty() ? "" : ": " + String.join(", ", failed));
        System.exit(failed.isEmpty() && passed > 0 ? 0 : 1);
    }

    // ------------------------------------------------------------------ plain CRUD

    static void crud() throws Exception {
        CuratorFramework c = client();
        String base = ROOT + "/crud";
        String p = c.create().creatingParentsIfNeeded().forPath(base + "/a/b/c", b("v1"));
        expectEq(base + "/a/b/c", p, "create returned path");
        expect(c.checkExists().forPath(base + "/a/b") != null, "creatingParentsIfNeeded made the parents");
        expectEq("v1", s(c.getData().forPath(p)), "getData");

        Stat st = new Stat();
        c.getData().storingStatIn(st).forPath(p);
        expectEq(0, st.getVersion(), "new node version");
        expectEq(2, st.getDataLength(), "dataLength");
        expectEq(st.getCzxid(), st.getMzxid(), "czxid == mzxid on a new node");
        expectEq(0L, st.getEphemeralOwner(), "ephemeralOwner of a persistent node");
        expectEq(0, st.getNumChildren(), "numChildren");

        Stat s2 = c.setData().withVersion(0).forPath(p, b("v2"));
        expectEq(1, s2.getVersion(), "version after setData");
        expect(s2.getMzxid() > s2.getCzxid(), "mzxid moves on setData");
        expectCode(KeeperException.Code.BADVERSION, () -> c.setData().withVersion(0).forPath(p, b("x")), "setData with a stale version");
        expectCode(KeeperException.Code.BADVERSION, () -> c.delete().withVersion(5).forPath(p), "delete with a wrong version");
        expectCode(KeeperException.Code.NODEEXISTS, () -> c.create().forPath(p), "create an existing node");
        expectCode(KeeperException.Code.NONODE, () -> c.create().forPath(base + "/missing/child"), "create under a missing parent");
        expectCode(KeeperException.Code.NONODE, () -> c.getData().forPath(base + "/nope"), "getData of a missing node");
        expectCode(KeeperException.Code.NONODE, () -> c.setData().forPath(base + "/nope", b("x")), "setData of a missing node");
        expectCode(KeeperException.Code.NOTEMPTY, () -> c.delete().forPath(base + "/a"), "delete a node with children");
        expect(c.checkExists().forPath(base + "/nope") == null, "checkExists of a missing node is null");

        c.create().orSetData().forPath(p, b("v3"));
        expectEq("v3", s(c.getData().forPath(p)), "create().orSetData() on an existing node");

        Stat created = new Stat();
        c.create().storingStatIn(created).forPath(base + "/withstat", b("xyz"));
        expectEq(3, created.getDataLength(), "create2 stat dataLength");
        expect(created.getCzxid() > 0, "create2 stat czxid > 0");

        for (String k : new String[] {"k2", "k3", "k1"}) c.create().creatingParentsIfNeeded().forPath(base + "/kids/" + k, b(k));
        List<String> kids = new ArrayList<>(c.getChildren().forPath(base + "/kids"));
        Collections.sort(kids);
        expectEq(Arrays.asList("k1", "k2", "k3"), kids, "getChildren");
        Stat parent = c.checkExists().forPath(base + "/kids");
        expectEq(3, parent.getNumChildren(), "parent numChildren");
        expectEq(3, parent.getCversion(), "parent cversion after 3 creates");

        c.create().forPath(base + "/empty", new byte[0]);
        expectEq(0, c.getData().forPath(base + "/empty").length, "empty data round trip");

        byte[] big = new byte[512 * 1024];
        for (int i = 0; i < big.length; i++) big[i] = (byte) (i * 31);
        c.create().forPath(base + "/big", big);
        expect(Arrays.equals(big, c.getData().forPath(base + "/big")), "512 KiB data round trip");

        c.delete().deletingChildrenIfNeeded().forPath(base + "/a");
        expect(c.checkExists().forPath(base + "/a") == null, "deletingChildrenIfNeeded removed the subtree");
        c.delete().guaranteed().withVersion(0).forPath(base + "/withstat");
        expect(c.checkExists().forPath(base + "/withstat") == null, "guaranteed delete");
    }

    static void backgroundAndNamespace() throws Exception {
        CuratorFramework c = client();
        BlockingQueue<CuratorEvent> events = new LinkedBlockingQueue<>();
        String base = ROOT + "/bg";
        c.create().creatingParentsIfNeeded().inBackground((cl, e) -> events.add(e)).forPath(base + "/x", b("1"));
        CuratorEvent e = poll(events, 10000, "background create callback");
        expectEq(CuratorEventType.CREATE, e.getType(), "background event type");
        expectEq(0, e.getResultCode(), "background create rc");
        expectEq(base + "/x", e.getName(), "background create name");
        c.getData().inBackground((cl, ev) -> events.add(ev)).forPath(base + "/x");
        e = poll(events, 10000, "background getData callback");
        expectEq("1", s(e.getData()), "background getData data");
        c.getData().inBackground((cl, ev) -> events.add(ev)).forPath(base + "/missing");
        e = poll(events, 10000, "background getData of a missing node");
        expectEq(KeeperException.Code.NONODE.intValue(), e.getResultCode(), "background NONODE rc");
        c.sync().inBackground((cl, ev) -> events.add(ev)).forPath(base);
        e = poll(events, 10000, "sync callback");
        expectEq(CuratorEventType.SYNC, e.getType(), "sync event type");
        expectEq(0, e.getResultCode(), "sync rc");

        CuratorFramework ns = c.usingNamespace(ROOT.substring(1) + "/ns");
        ns.create().creatingParentsIfNeeded().forPath("/inside", b("n"));
        expectEq("n", s(c.getData().forPath(ROOT + "/ns/inside")), "namespace maps /inside to " + ROOT + "/ns/inside");
    }

    static void sequentialNumbering() throws Exception {
        CuratorFramework c = client();
        String base = ROOT + "/seq";
        c.create().forPath(base, new byte[0]);
        c.create().forPath(base + "/plain", new byte[0]);
        String s1 = c.create().withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath(base + "/s-", b("a"));
        // The sequence number counts the creates under the parent so far.
        expectEq(base + "/s-0000000001", s1, "first sequential name after one plain child");
        c.delete().forPath(base + "/plain");
        // The sequence counter only counts creates: the delete does not advance it.
        String s2 = c.create().withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath(base + "/s-", b("b"));
        expectEq(base + "/s-0000000002", s2, "sequential name after a delete");
        String s3 = c.create().withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath(base + "/", b("c"));
        expect(Pattern.matches(Pattern.quote(base + "/") + "\\d{10}", s3), "sequential with an empty name prefix: " + s3);
    }

    static void ephemeralSequential() throws Exception {
        CuratorFramework a = client(), bc = client();
        String base = ROOT + "/eseq";
        a.create().forPath(base, new byte[0]);
        String p1 = a.create().withMode(CreateMode.EPHEMERAL_SEQUENTIAL).forPath(base + "/n-", b("1"));
        String p2 = a.create().withMode(CreateMode.EPHEMERAL_SEQUENTIAL).forPath(base + "/n-", b("2"));
        expect(Pattern.matches(Pattern.quote(base + "/n-") + "\\d{10}", p1), "sequential name format: " + p1);
        long n1 = Long.parseLong(p1.substring(p1.length() - 10)), n2 = Long.parseLong(p2.substring(p2.length() - 10));
        expectEq(n1 + 1, n2, "consecutive sequence numbers");
        Stat st = bc.checkExists().forPath(p1);
        expectEq(hex(sessionId(a)), hex(st.getEphemeralOwner()), "ephemeralOwner is the creator's session");
        expectCode(KeeperException.Code.NOCHILDRENFOREPHEMERALS, () -> a.create().forPath(p1 + "/child"), "child of an ephemeral");
        String prot = a.create().withProtection().withMode(CreateMode.EPHEMERAL_SEQUENTIAL).forPath(base + "/prot-", b("p"));
        String node = ZKPaths.getNodeFromPath(prot);
        expect(node.startsWith("_c_") && Pattern.matches("_c_[0-9a-f-]{36}-prot-\\d{10}", node), "protected name: " + node);
        String eph = a.create().withMode(CreateMode.EPHEMERAL).forPath(base + "/plain-eph", b("e"));
        expectEq(4, bc.getChildren().forPath(base).size(), "children seen by the other client");
        a.close();
        waitFor("the closed session's ephemerals to disappear", 10000, () -> bc.getChildren().forPath(base).isEmpty());
        expect(bc.checkExists().forPath(eph) == null, "plain ephemeral gone");
    }

    // ------------------------------------------------------------------ node kinds

    static void container() throws Exception {
        CuratorFramework c = client();
        String base = ROOT + "/cont";
        c.create().creatingParentContainersIfNeeded().forPath(base + "/box/item", b("i"));
        expect(c.checkExists().forPath(base + "/box") != null, "container parent created");
        String explicit = c.create().withMode(CreateMode.CONTAINER).forPath(ROOT + "/cont-never-used", b("e"));
        expectCode(KeeperException.Code.NONODE, () -> c.create().withMode(CreateMode.CONTAINER).forPath(ROOT + "/nope/cont"), "container under a missing parent");
        c.delete().forPath(base + "/box/item");
        waitFor("the emptied container " + base + "/box to be removed", 20000, () -> c.checkExists().forPath(base + "/box") == null);
        waitFor("the container " + base + " (emptied by the removal of its container child) to be removed", 20000,
                () -> c.checkExists().forPath(base) == null);
        // A container that never had a child is left alone (ZooKeeper's ContainerManager skips cversion 0).
        expect(c.checkExists().forPath(explicit) != null, "a container that never had children is kept");
        c.delete().forPath(explicit);
    }

    static void ttl() throws Exception {
        CuratorFramework c = client();
        String base = ROOT + "/ttl";
        c.create().forPath(base, new byte[0]);
        String t = c.create().withTtl(1000).withMode(CreateMode.PERSISTENT_WITH_TTL).forPath(base + "/node", b("t"));
        Stat st = c.checkExists().forPath(t);
        expect(st != null, "TTL node created");
        String ts = c.create().withTtl(1000).withMode(CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL).forPath(base + "/seq-", b("s"));
        expect(Pattern.matches(Pattern.quote(base + "/seq-") + "\\d{10}", ts), "sequential TTL name: " + ts);
        String parent = c.create().withTtl(1000).withMode(CreateMode.PERSISTENT_WITH_TTL).forPath(base + "/parent", b("p"));
        c.create().forPath(parent + "/child", b("c"));
        waitFor("expired TTL nodes to be removed", 20000, () -> c.checkExists().forPath(t) == null && c.checkExists().forPath(ts) == null);
        expect(c.checkExists().forPath(parent) != null, "an expired TTL node with a child is kept");
        c.delete().forPath(parent + "/child");
        waitFor("the expired TTL node to go once its child is deleted", 20000, () -> c.checkExists().forPath(parent) == null);
        // A TTL node that is touched stays.
        String kept = c.create().withTtl(3000).withMode(CreateMode.PERSISTENT_WITH_TTL).forPath(base + "/kept", b("k"));
        for (int i = 0; i < 6; i++) { Thread.sleep(500); c.setData().forPath(kept, b("k" + i)); }
        expect(c.checkExists().forPath(kept) != null, "a TTL node modified within its TTL is kept");
    }

    // ------------------------------------------------------------------ transactions

    static void transaction() throws Exception {
        CuratorFramework c = client();
        String base = ROOT + "/tx";
        c.create().creatingParentsIfNeeded().forPath(base + "/old", b("o"));
        c.create().forPath(base + "/keep", b("k"));
        List<CuratorTransactionResult> r = c.transaction().forOperations(
                c.transactionOp().create().forPath(base + "/new", b("n")),
                c.transactionOp().setData().forPath(base + "/keep", b("k2")),
                c.transactionOp().check().withVersion(1).forPath(base + "/keep"),
                c.transactionOp().delete().forPath(base + "/old"));
        expectEq(4, r.size(), "number of results");
        expectEq(Arrays.asList(OperationType.CREATE, OperationType.SET_DATA, OperationType.CHECK, OperationType.DELETE),
                Arrays.asList(r.get(0).getType(), r.get(1).getType(), r.get(2).getType(), r.get(3).getType()), "result types");
        expectEq(base + "/new", r.get(0).getResultPath(), "create result path");
        expectEq(1, r.get(1).getResultStat().getVersion(), "setData result stat version");
        for (CuratorTransactionResult x : r) expectEq(0, x.getError(), "per-op error of a successful transaction");
        expectEq("k2", s(c.getData().forPath(base + "/keep")), "setData applied");
        expect(c.checkExists().forPath(base + "/old") == null, "delete applied");

        // A failing transaction has no effect and reports each op's result.
        CuratorOp createNew2 = c.transactionOp().create().forPath(base + "/new2", b("x"));
        CuratorOp badCheck = c.transactionOp().check().withVersion(7).forPath(base + "/keep");
        CuratorOp deleteNew = c.transactionOp().delete().forPath(base + "/new");
        try {
            c.transaction().forOperations(createNew2, badCheck, deleteNew);
            throw new AssertionError("a transaction with a failing check succeeded");
        } catch (KeeperException e) {
            expectEq(KeeperException.Code.BADVERSION, e.code(), "failing transaction error");
            List<Integer> codes = new ArrayList<>();
            for (OpResult res : e.getResults()) codes.add(res instanceof OpResult.ErrorResult ? ((OpResult.ErrorResult) res).getErr() : 999);
            expectEq(Arrays.asList(0, -103, -2), codes, "per-op results of a failed multi");
        }
        expect(c.checkExists().forPath(base + "/new2") == null, "failed transaction created nothing");
        expect(c.checkExists().forPath(base + "/new") != null, "failed transaction deleted nothing");

        r = c.transaction().forOperations(c.transactionOp().create().withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath(base + "/s-", b("s")),
                c.transactionOp().create().withMode(CreateMode.EPHEMERAL).forPath(base + "/eph", b("e")));
        expect(Pattern.matches(Pattern.quote(base + "/s-") + "\\d{10}", r.get(0).getResultPath()), "sequential create in a transaction: " + r.get(0).getResultPath());
        expectEq(hex(sessionId(c)), hex(c.checkExists().forPath(base + "/eph").getEphemeralOwner()), "ephemeral created in a transaction");

        // Read-only multi (ZooKeeper 3.6 multiRead is not exposed by Curator; a check-only multi is).
        r = c.transaction().forOperations(c.transactionOp().check().forPath(base + "/keep"));
        expectEq(1, r.size(), "check-only transaction");
    }

    @SuppressWarnings("deprecation")
    static void transactionLegacy() throws Exception {
        CuratorFramework c = client();
        String base = ROOT + "/txl";
        c.create().forPath(base, new byte[0]);
        Collection<CuratorTransactionResult> r = c.inTransaction()
                .create().forPath(base + "/a", b("1")).and()
                .setData().forPath(base + "/a", b("2")).and()
                .create().forPath(base + "/b", b("b")).and()
                .delete().forPath(base + "/b").and()
                .commit();
        expectEq(4, r.size(), "legacy transaction results");
        expectEq("2", s(c.getData().forPath(base + "/a")), "legacy transaction applied");
        expect(c.checkExists().forPath(base + "/b") == null, "create+delete in one transaction");
        expectCode(KeeperException.Code.NODEEXISTS, () -> c.inTransaction().create().forPath(base + "/c").and().create().forPath(base + "/a").and().commit(),
                "legacy transaction creating an existing node");
        expect(c.checkExists().forPath(base + "/c") == null, "failed legacy transaction created nothing");
    }

    // ------------------------------------------------------------------ ACLs

    static void aclAndAuth() throws Exception {
        ACLProvider creatorAll = new ACLProvider() {
            public List<ACL> getDefaultAcl() { return ZooDefs.Ids.CREATOR_ALL_ACL; }
            public List<ACL> getAclForPath(String path) { return ZooDefs.Ids.CREATOR_ALL_ACL; }
        };
        CuratorFramework alice = start(CuratorFrameworkFactory.builder().authorization("digest", b("alice:secret")).aclProvider(creatorAll));
        CuratorFramework anon = client();
        CuratorFramework root = start(CuratorFrameworkFactory.builder().authorization("digest", b("super:test")));
        String base = ROOT + "/acl";
        anon.create().forPath(base, new byte[0]);
        String p = alice.create().forPath(base + "/secret", b("s"));
        List<ACL> acl = alice.getACL().forPath(p);
        expectEq(1, acl.size(), "number of ACL entries");
        expectEq("digest", acl.get(0).getId().getScheme(), "ACL scheme");
        expect(acl.get(0).getId().getId().startsWith("alice:"), "ACL id is alice's digest: " + acl.get(0).getId().getId());
        expectEq(ZooDefs.Perms.ALL, acl.get(0).getPerms(), "ACL perms");
        expectEq("s", s(alice.getData().forPath(p)), "owner reads");
        expectCode(KeeperException.Code.NOAUTH, () -> anon.getData().forPath(p), "anonymous getData");
        expectCode(KeeperException.Code.NOAUTH, () -> anon.setData().forPath(p, b("x")), "anonymous setData");
        expectCode(KeeperException.Code.NOAUTH, () -> anon.create().forPath(p + "/kid"), "anonymous create under it");
        expectCode(KeeperException.Code.NOAUTH, () -> anon.getACL().forPath(p), "anonymous getACL");
        expect(anon.checkExists().forPath(p) != null, "exists needs no permission");
        expectEq("s", s(root.getData().forPath(p)), "the super user reads");
        expectCode(KeeperException.Code.BADVERSION, () -> alice.setACL().withVersion(3).withACL(ZooDefs.Ids.OPEN_ACL_UNSAFE).forPath(p), "setACL with a wrong aversion");
        Stat st = alice.setACL().withVersion(0).withACL(ZooDefs.Ids.OPEN_ACL_UNSAFE).forPath(p);
        expectEq(1, st.getAversion(), "aversion after setACL");
        expectEq("s", s(anon.getData().forPath(p)), "anonymous reads after the ACL is opened");
        // Read-only world ACL.
        anon.create().withACL(ZooDefs.Ids.READ_ACL_UNSAFE).forPath(base + "/ro", b("r"));
        expectEq("r", s(anon.getData().forPath(base + "/ro")), "read on a READ-only node");
        expectCode(KeeperException.Code.NOAUTH, () -> anon.setData().forPath(base + "/ro", b("x")), "write on a READ-only node");
        // Delete is checked against the parent's ACL only.
        anon.delete().forPath(base + "/ro");
        expect(anon.checkExists().forPath(base + "/ro") == null, "delete of a READ-only node under an open parent");
        // A node whose ACL lacks DELETE protects its children from deletion.
        anon.create().withACL(Arrays.asList(new ACL(ZooDefs.Perms.ALL & ~ZooDefs.Perms.DELETE, ZooDefs.Ids.ANYONE_ID_UNSAFE))).forPath(base + "/nodel", b("d"));
        anon.create().forPath(base + "/nodel/kid", b("k"));
        expectCode(KeeperException.Code.NOAUTH, () -> anon.delete().forPath(base + "/nodel/kid"), "delete under a parent without DELETE permission");
        anon.setACL().withACL(ZooDefs.Ids.OPEN_ACL_UNSAFE).forPath(base + "/nodel");
        anon.delete().deletingChildrenIfNeeded().forPath(base + "/nodel");
    }

    // ------------------------------------------------------------------ watches

    static void oneShotWatches() throws Exception {
        CuratorFramework a = client(), bc = client();
        String base = ROOT + "/w1";
        a.create().forPath(base, new byte[0]);
        BlockingQueue<String> q = new LinkedBlockingQueue<>();
        Watcher w = e -> { if (e.getType() != Watcher.Event.EventType.None) q.add(e.getType() + " " + e.getPath()); };
        expect(a.checkExists().usingWatcher(w).forPath(base + "/x") == null, "x does not exist yet");
        bc.create().forPath(base + "/x", b("1"));
        expectEq("NodeCreated " + base + "/x", poll(q, 10000, "exists watch"), "exists watch event");
        a.getData().usingWatcher(w).forPath(base + "/x");
        bc.setData().forPath(base + "/x", b("2"));
        expectEq("NodeDataChanged " + base + "/x", poll(q, 10000, "data watch"), "data watch event");
        a.getChildren().usingWatcher(w).forPath(base);
        bc.create().forPath(base + "/y", b("y"));
        expectEq("NodeChildrenChanged " + base, poll(q, 10000, "child watch"), "child watch event");
        a.getData().usingWatcher(w).forPath(base + "/y");
        bc.delete().forPath(base + "/y");
        expectEq("NodeDeleted " + base + "/y", poll(q, 10000, "data watch on delete"), "delete event");
        // One-shot: another change fires nothing.
        bc.setData().forPath(base + "/x", b("3"));
        String extra = q.poll(700, TimeUnit.MILLISECONDS);
        expect(extra == null, "one-shot watch fired twice: " + extra);
        // The watch event is delivered before the reply to a read that sees the change (both go
        // through the client's event thread when the read is asynchronous).
        List<String> order = Collections.synchronizedList(new ArrayList<>());
        ZooKeeper zk = a.getZookeeperClient().getZooKeeper();
        zk.exists(base + "/x", e -> order.add("event " + e.getType()));
        bc.setData().forPath(base + "/x", b("4"));
        CountDownLatch replied = new CountDownLatch(1);
        zk.exists(base + "/x", false, (rc, path, ctx, st) -> { order.add("read version " + (st == null ? "?" : st.getVersion())); replied.countDown(); }, null);
        expect(replied.await(10, TimeUnit.SECONDS), "async exists replied");
        expectEq(Arrays.asList("event NodeDataChanged", "read version 3"), new ArrayList<>(order), "event before the read that observes the change");
        // Watch removal.
        Watcher w2 = e -> q.add("w2 " + e.getType() + " " + e.getPath());
        a.getData().usingWatcher(w2).forPath(base + "/x");
        a.watches().remove(w2).ofType(Watcher.WatcherType.Data).forPath(base + "/x");
        expectEq("w2 DataWatchRemoved " + base + "/x", poll(q, 5000, "watch removed event"), "removeWatches event");
        bc.setData().forPath(base + "/x", b("5"));
        extra = q.poll(700, TimeUnit.MILLISECONDS);
        expect(extra == null, "a removed watch fired: " + extra);
        expectCode(KeeperException.Code.NOWATCHER, () -> a.watches().remove(w2).ofType(Watcher.WatcherType.Data).forPath(base + "/x"), "removing a watch that is gone");
    }

    static void persistentRecursiveWatch() throws Exception {
        CuratorFramework a = client(), bc = client();
        String base = ROOT + "/pw";
        a.create().forPath(base, new byte[0]);
        a.create().forPath(base + "-flat", new byte[0]);
        BlockingQueue<String> q = new LinkedBlockingQueue<>();
        Watcher w = e -> { if (e.getType() != Watcher.Event.EventType.None) q.add(e.getType() + " " + e.getPath()); };
        a.watchers().add().withMode(AddWatchMode.PERSISTENT_RECURSIVE).usingWatcher(w).forPath(base);
        bc.create().forPath(base + "/c1", b("1"));
        bc.create().forPath(base + "/c1/g", b("g"));
        bc.setData().forPath(base + "/c1/g", b("g2"));
        bc.setData().forPath(base + "/c1/g", b("g3"));
        bc.delete().forPath(base + "/c1/g");
        bc.setData().forPath(base, b("root"));
        List<String> got = new ArrayList<>();
        for (int i = 0; i < 6; i++) got.add(poll(q, 10000, "recursive watch event " + (i + 1) + " (have " + got + ")"));
        expectEq(Arrays.asList("NodeCreated " + base + "/c1", "NodeCreated " + base + "/c1/g", "NodeDataChanged " + base + "/c1/g",
                "NodeDataChanged " + base + "/c1/g", "NodeDeleted " + base + "/c1/g", "NodeDataChanged " + base), got, "recursive watch events");

        BlockingQueue<String> q2 = new LinkedBlockingQueue<>();
        Watcher w2 = e -> { if (e.getType() != Watcher.Event.EventType.None) q2.add(e.getType() + " " + e.getPath()); };
        a.watchers().add().withMode(AddWatchMode.PERSISTENT).usingWatcher(w2).forPath(base + "-flat");
        bc.create().forPath(base + "-flat/k", b("k"));
        bc.create().forPath(base + "-flat/k/deeper", b("d"));
        bc.setData().forPath(base + "-flat", b("1"));
        bc.setData().forPath(base + "-flat", b("2"));
        bc.delete().forPath(base + "-flat/k/deeper");
        bc.delete().forPath(base + "-flat/k");
        List<String> got2 = new ArrayList<>();
        for (int i = 0; i < 4; i++) got2.add(poll(q2, 10000, "persistent watch event " + (i + 1) + " (have " + got2 + ")"));
        expectEq(Arrays.asList("NodeChildrenChanged " + base + "-flat", "NodeDataChanged " + base + "-flat", "NodeDataChanged " + base + "-flat",
                "NodeChildrenChanged " + base + "-flat"), got2, "persistent (non-recursive) watch events");
        String extra = q2.poll(500, TimeUnit.MILLISECONDS);
        expect(extra == null, "persistent watch fired for a grandchild: " + extra);

        a.watches().remove(w).ofType(Watcher.WatcherType.Any).forPath(base);
        Thread.sleep(200);
        q.clear();
        bc.create().forPath(base + "/after", b("a"));
        extra = q.poll(700, TimeUnit.MILLISECONDS);
        expect(extra == null, "a removed recursive watch fired: " + extra);
    }

    static void zookeeperExtras() throws Exception {
        CuratorFramework a = client();
        ZooKeeper zk = a.getZookeeperClient().getZooKeeper();
        String base = ROOT + "/extras";
        a.create().creatingParentsIfNeeded().forPath(base + "/a/b", new byte[0]);
        a.create().forPath(base + "/c", new byte[0]);
        expectEq(3, zk.getAllChildrenNumber(base), "getAllChildrenNumber");
        a.create().withMode(CreateMode.EPHEMERAL).forPath(base + "/e1", new byte[0]);
        a.create().withMode(CreateMode.EPHEMERAL).forPath(base + "/a/e2", new byte[0]);
        List<String> eph = new ArrayList<>(zk.getEphemerals(base));
        Collections.sort(eph);
        expectEq(Arrays.asList(base + "/a/e2", base + "/e1"), eph, "getEphemerals(prefix)");
        expectEq(2, zk.getEphemerals().size(), "getEphemerals()");
        byte[] cfg = a.getConfig().forEnsemble();
        expect(cfg != null, "getConfig returns data");
    }

    static void whoAmI() throws Exception {
        CuratorFramework a = start(CuratorFrameworkFactory.builder().authorization("digest", b("bob:pw")));
        List<ClientInfo> who = a.getZookeeperClient().getZooKeeper().whoAmI();
        Map<String, String> ids = new LinkedHashMap<>();
        for (ClientInfo ci : who) ids.put(ci.getAuthScheme(), ci.getUser());
        expectEq(2, who.size(), "whoAmI entries " + ids);
        expectEq("127.0.0.1", ids.get("ip"), "whoAmI ip");
        // ZooKeeper reports the user name of a digest identity (DigestAuthenticationProvider.getUserName).
        expectEq("bob", ids.get("digest"), "whoAmI digest user");
    }

    /** Stat.cversion as a client sees it after creates and deletes. */
    static void statCversion() throws Exception {
        CuratorFramework c = client();
        String base = ROOT + "/cversion";
        c.create().forPath(base, new byte[0]);
        c.create().forPath(base + "/a", new byte[0]);
        expectEq(1, c.checkExists().forPath(base).getCversion(), "cversion after one create");
        c.create().withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath(base + "/s-", new byte[0]);
        expectEq(2, c.checkExists().forPath(base).getCversion(), "cversion after two creates");
        c.delete().forPath(base + "/a");
        // ZooKeeper stores the number of child creates and reports 2 * creates - numChildren,
        // that is creates + deletes ("the number of changes to the children").
        expectEq(3, c.checkExists().forPath(base).getCversion(), "cversion after two creates and a delete");
        c.create().forPath(base + "/b", new byte[0]);
        c.delete().forPath(base + "/b");
        expectEq(5, c.checkExists().forPath(base).getCversion(), "cversion after three creates and two deletes");
        Stat st = new Stat();
        c.getChildren().storingStatIn(st).forPath(base);
        expectEq(5, st.getCversion(), "cversion from getChildren2");
    }

    /** Stat.ephemeralOwner as a client sees it for containers and TTL nodes. */
    static void statOwnerOfContainerAndTtl() throws Exception {
        CuratorFramework c = client();
        String base = ROOT + "/owners";
        c.create().forPath(base, new byte[0]);
        c.create().withMode(CreateMode.CONTAINER).forPath(base + "/cont", new byte[0]);
        c.create().withTtl(60000).withMode(CreateMode.PERSISTENT_WITH_TTL).forPath(base + "/ttl", new byte[0]);
        c.create().withMode(CreateMode.EPHEMERAL).forPath(base + "/eph", new byte[0]);
        expectEq(hex(sessionId(c)), hex(c.checkExists().forPath(base + "/eph").getEphemeralOwner()), "ephemeralOwner of an ephemeral");
        expectEq(hex(CLIENT_OWNER_OF_CONTAINER_OR_TTL), hex(c.checkExists().forPath(base + "/cont").getEphemeralOwner()), "ephemeralOwner of a container");
        expectEq(hex(CLIENT_OWNER_OF_CONTAINER_OR_TTL), hex(c.checkExists().forPath(base + "/ttl").getEphemeralOwner()), "ephemeralOwner of a TTL node");
        Stat created = new Stat();
        c.create().withTtl(60000).storingStatIn(created).withMode(CreateMode.PERSISTENT_WITH_TTL).forPath(base + "/ttl2", new byte[0]);
        expectEq(hex(CLIENT_OWNER_OF_CONTAINER_OR_TTL), hex(created.getEphemeralOwner()), "ephemeralOwner in the create2 reply of a TTL node");
    }

    // ------------------------------------------------------------------ locks

    static void mutex() throws Exception {
        CuratorFramework a = client(), bc = client();
        String lp = ROOT + "/mutex";
        InterProcessMutex ma = new InterProcessMutex(a, lp), mb = new InterProcessMutex(bc, lp);
        ma.acquire();
        expect(!mb.acquire(500, TimeUnit.MILLISECONDS), "b acquired the mutex while a held it");
        ma.acquire();
        ma.release();
        expect(ma.isAcquiredInThisProcess(), "reentrant hold kept after one release");
        expect(!mb.acquire(300, TimeUnit.MILLISECONDS), "b acquired while a still held it re-entrantly");
        ma.release();
        expect(mb.acquire(5, TimeUnit.SECONDS), "b acquires once a released");
        mb.release();

        // Contention: 2 clients x 2 threads, 10 rounds each.
        AtomicInteger inside = new AtomicInteger(), maxInside = new AtomicInteger(), total = new AtomicInteger();
        List<Thread> threads = new ArrayList<>();
        List<Throwable> errors = Collections.synchronizedList(new ArrayList<>());
        for (CuratorFramework cl : new CuratorFramework[] {a, bc, a, bc}) {
            Thread t = new Thread(() -> {
                InterProcessMutex m = new InterProcessMutex(cl, lp);
                try {
                    for (int i = 0; i < 10; i++) {
                        if (!m.acquire(20, TimeUnit.SECONDS)) throw new AssertionError("acquire timed out");
                        int n = inside.incrementAndGet();
                        maxInside.accumulateAndGet(n, Math::max);
                        Thread.sleep(3);
                        inside.decrementAndGet();
                        total.incrementAndGet();
                        m.release();
                    }
                } catch (Throwable e) { errors.add(e); }
            });
            t.start();
            threads.add(t);
        }
        for (Thread t : threads) t.join(40000);
        expect(errors.isEmpty(), "contending threads failed: " + errors);
        expectEq(1, maxInside.get(), "most holders at once");
        expectEq(40, total.get(), "rounds completed");
        // The lock path is a container: it may already be gone once empty.
        Stat lockDir = a.checkExists().forPath(lp);
        expect(lockDir == null || lockDir.getNumChildren() == 0, "lock nodes left after all releases: " + (lockDir == null ? 0 : lockDir.getNumChildren()));
    }

    static void semaphore() throws Exception {
        CuratorFramework c1 = client(), c2 = client(), c3 = client();
        String p = ROOT + "/sem";
        InterProcessSemaphoreV2 s1 = new InterProcessSemaphoreV2(c1, p, 2), s2 = new InterProcessSemaphoreV2(c2, p, 2), s3 = new InterProcessSemaphoreV2(c3, p, 2);
        Lease l1 = s1.acquire(5, TimeUnit.SECONDS), l2 = s2.acquire(5, TimeUnit.SECONDS);
        expect(l1 != null && l2 != null, "two leases granted out of 2");
        expectEq(2, s3.getParticipantNodes().size(), "participant nodes");
        expect(s3.acquire(700, TimeUnit.MILLISECONDS) == null, "a third lease was granted with maxLeases 2");
        Future<Lease> waiting = Executors.newSingleThreadExecutor().submit(() -> s3.acquire(10, TimeUnit.SECONDS));
        Thread.sleep(300);
        s1.returnLease(l1);
        Lease l3 = waiting.get(15, TimeUnit.SECONDS);
        expect(l3 != null, "the waiting client gets the returned lease");
        Collection<Lease> two = s1.acquire(1, 500, TimeUnit.MILLISECONDS);
        expect(two == null, "acquire while full returned leases");
        s2.returnLease(l2);
        s3.returnLease(l3);
        Collection<Lease> both = s1.acquire(2, 5, TimeUnit.SECONDS);
        expect(both != null && both.size() == 2, "acquire 2 leases at once when free");
        s1.returnAll(both);
    }

    static void readWriteLock() throws Exception {
        CuratorFramework a = client(), bc = client(), w = client();
        String p = ROOT + "/rw";
        InterProcessReadWriteLock ra = new InterProcessReadWriteLock(a, p), rb = new InterProcessReadWriteLock(bc, p), rw = new InterProcessReadWriteLock(w, p);
        ra.readLock().acquire();
        expect(rb.readLock().acquire(5, TimeUnit.SECONDS), "two readers at once");
        expect(!rw.writeLock().acquire(500, TimeUnit.MILLISECONDS), "writer got the lock while readers held it");
        ra.readLock().release();
        expect(!rw.writeLock().acquire(300, TimeUnit.MILLISECONDS), "writer got the lock while one reader held it");
        rb.readLock().release();
        expect(rw.writeLock().acquire(5, TimeUnit.SECONDS), "writer gets the lock once readers left");
        expect(!ra.readLock().acquire(500, TimeUnit.MILLISECONDS), "reader got the lock while a writer held it");
        expect(rw.readLock().acquire(2, TimeUnit.SECONDS), "the writer can downgrade to a read lock");
        rw.writeLock().release();
        expect(ra.readLock().acquire(5, TimeUnit.SECONDS), "reader shares with the downgraded holder");
        ra.readLock().release();
        rw.readLock().release();
    }

    // ------------------------------------------------------------------ leader election

    static void leaderLatch() throws Exception {
        CuratorFramework a = client(), bc = client();
        String p = ROOT + "/latch";
        LeaderLatch la = new LeaderLatch(a, p, "A"), lb = closeLater(new LeaderLatch(bc, p, "B"));
        la.start();
        expect(la.await(10, TimeUnit.SECONDS), "first latch became leader");
        lb.start();
        waitFor("two participants", 10000, () -> lb.getParticipants().size() == 2);
        expect(!lb.hasLeadership(), "second latch is not leader");
        expectEq("A", lb.getLeader().getId(), "leader seen by B");
        // The leader's process goes away: its session closes and B takes over.
        a.close();
        expect(lb.await(10, TimeUnit.SECONDS), "leadership moved to B after A's client closed");
        expectEq("B", lb.getLeader().getId(), "leader after A left");
        expectEq(1, lb.getParticipants().size(), "participants after A left");
    }

    static void leaderSelector() throws Exception {
        CuratorFramework a = client(), bc = client();
        String p = ROOT + "/selector";
        AtomicInteger leading = new AtomicInteger(), maxLeading = new AtomicInteger();
        BlockingQueue<String> took = new LinkedBlockingQueue<>();
        Map<String, LeaderSelector> selectors = new LinkedHashMap<>();
        for (Map.Entry<String, CuratorFramework> e : Map.of("A", a, "B", bc).entrySet()) {
            String id = e.getKey();
            LeaderSelector sel = new LeaderSelector(e.getValue(), p, new LeaderSelectorListenerAdapter() {
                public void takeLeadership(CuratorFramework client) throws Exception {
                    maxLeading.accumulateAndGet(leading.incrementAndGet(), Math::max);
                    took.add(id);
                    try { Thread.sleep(Long.MAX_VALUE); } finally { leading.decrementAndGet(); }
                }
            });
            sel.setId(id);
            sel.autoRequeue();
            selectors.put(id, closeLater(sel));
        }
        for (LeaderSelector s : selectors.values()) s.start();
        String first = poll(took, 10000, "a leader to be selected");
        LeaderSelector other = selectors.get(first.equals("A") ? "B" : "A");
        waitFor("two participants", 10000, () -> other.getParticipants().size() == 2);
        expectEq(first, other.getLeader().getId(), "leader as seen by the other selector");
        expect(!other.hasLeadership(), "the other selector is not leader");
        selectors.get(first).close();
        String second = poll(took, 10000, "leadership to move after the leader closed");
        expect(!second.equals(first), "leadership moved to the other selector");
        expectEq(1, maxLeading.get(), "leaders at once");
    }

    // ------------------------------------------------------------------ shared values

    static void atomicLong() throws Exception {
        CuratorFramework a = client(), bc = client();
        String p = ROOT + "/along";
        List<Thread> threads = new ArrayList<>();
        List<Throwable> errors = Collections.synchronizedList(new ArrayList<>());
        for (CuratorFramework cl : new CuratorFramework[] {a, bc}) {
            Thread t = new Thread(() -> {
                DistributedAtomicLong d = new DistributedAtomicLong(cl, p, new RetryNTimes(1000, 1));
                try {
                    for (int i = 0; i < 25; i++) {
                        AtomicValue<Long> v = d.increment();
                        while (!v.succeeded()) v = d.increment();
                    }
                } catch (Throwable e) { errors.add(e); }
            });
            t.start();
            threads.add(t);
        }
        for (Thread t : threads) t.join(40000);
        expect(errors.isEmpty(), "incrementing threads failed: " + errors);
        DistributedAtomicLong da = new DistributedAtomicLong(a, p, new RetryNTimes(10, 10)), db = new DistributedAtomicLong(bc, p, new RetryNTimes(10, 10));
        expectEq(50L, da.get().postValue(), "value after 50 increments from two clients");
        expect(da.compareAndSet(50L, 100L).succeeded(), "compareAndSet with the right expected value");
        expect(!db.compareAndSet(50L, 7L).succeeded(), "compareAndSet with a stale expected value");
        expectEq(100L, db.get().postValue(), "value after CAS");
        AtomicValue<Long> dec = db.add(-1L);
        expect(dec.succeeded() && dec.preValue() == 100L && dec.postValue() == 99L, "add(-1): " + dec.preValue() + " -> " + dec.postValue());
    }

    static void sharedCount() throws Exception {
        CuratorFramework a = client(), bc = client();
        String p = ROOT + "/count";
        SharedCount sa = closeLater(new SharedCount(a, p, 0)), sb = closeLater(new SharedCount(bc, p, 0));
        sa.start();
        sb.start();
        BlockingQueue<Integer> seen = new LinkedBlockingQueue<>();
        sb.addListener(new SharedCountListener() {
            public void countHasChanged(SharedCountReader r, int n) { seen.add(n); }
            public void stateChanged(CuratorFramework c, ConnectionState s) { }
        });
        sa.setCount(5);
        expectEq(5, poll(seen, 10000, "countHasChanged on the other client"), "count seen by the listener");
        waitFor("b's count to be 5", 5000, () -> sb.getCount() == 5);
        VersionedValue<Integer> stale = sa.getVersionedValue();
        VersionedValue<Integer> cur = sb.getVersionedValue();
        expect(sb.trySetCount(cur, 6), "trySetCount with the current version");
        expect(!sa.trySetCount(stale, 9), "trySetCount with a stale version succeeded");
        waitFor("a's count to be 6", 5000, () -> sa.getCount() == 6);
    }

    // ------------------------------------------------------------------ barriers and queues

    static void barrier() throws Exception {
        CuratorFramework a = client(), bc = client();
        String p = ROOT + "/barrier";
        DistributedBarrier ba = new DistributedBarrier(a, p), bb = new DistributedBarrier(bc, p);
        ba.setBarrier();
        expect(!bb.waitOnBarrier(500, TimeUnit.MILLISECONDS), "waitOnBarrier returned while the barrier was set");
        ExecutorService ex = Executors.newSingleThreadExecutor();
        Future<Boolean> w = ex.submit(() -> bb.waitOnBarrier(15, TimeUnit.SECONDS));
        Thread.sleep(300);
        expect(!w.isDone(), "waiter passed the barrier early");
        ba.removeBarrier();
        expect(w.get(20, TimeUnit.SECONDS), "waiter released when the barrier was removed");
        ex.shutdownNow();
    }

    static void doubleBarrier() throws Exception {
        CuratorFramework[] cs = {client(), client(), client()};
        String p = ROOT + "/dbarrier";
        ExecutorService ex = Executors.newFixedThreadPool(3);
        List<Future<Boolean>> enters = new ArrayList<>();
        List<DistributedDoubleBarrier> bs = new ArrayList<>();
        for (CuratorFramework c : cs) bs.add(new DistributedDoubleBarrier(c, p, 3));
        enters.add(ex.submit(() -> bs.get(0).enter(20, TimeUnit.SECONDS)));
        enters.add(ex.submit(() -> bs.get(1).enter(20, TimeUnit.SECONDS)));
        Thread.sleep(700);
        expect(!enters.get(0).isDone() && !enters.get(1).isDone(), "enter returned before all 3 members arrived");
        enters.add(ex.submit(() -> bs.get(2).enter(20, TimeUnit.SECONDS)));
        for (Future<Boolean> f : enters) expect(f.get(25, TimeUnit.SECONDS), "enter succeeded");
        List<Future<Boolean>> leaves = new ArrayList<>();
        for (DistributedDoubleBarrier b : bs) leaves.add(ex.submit(() -> b.leave(20, TimeUnit.SECONDS)));
        for (Future<Boolean> f : leaves) expect(f.get(25, TimeUnit.SECONDS), "leave succeeded");
        ex.shutdownNow();
    }

    static void queue() throws Exception {
        CuratorFramework a = client(), bc = client();
        String p = ROOT + "/queue";
        QueueSerializer<String> ser = new QueueSerializer<String>() {
            public byte[] serialize(String item) { return b(item); }
            public String deserialize(byte[] bytes) { return s(bytes); }
        };
        BlockingQueue<String> got = new LinkedBlockingQueue<>();
        QueueConsumer<String> consumer = new QueueConsumer<String>() {
            public void consumeMessage(String message) { got.add(message); }
            public void stateChanged(CuratorFramework c, ConnectionState s) { }
        };
        DistributedQueue<String> producer = closeLater(QueueBuilder.builder(a, null, ser, p).buildQueue());
        producer.start();
        for (int i = 0; i < 10; i++) producer.put("m" + i);
        DistributedQueue<String> cq = closeLater(QueueBuilder.builder(bc, consumer, ser, p).lockPath(p + "-lock").buildQueue());
        cq.start();
        List<String> items = new ArrayList<>();
        for (int i = 0; i < 10; i++) items.add(poll(got, 15000, "queue item " + i + " (have " + items + ")"));
        List<String> want = new ArrayList<>();
        for (int i = 0; i < 10; i++) want.add("m" + i);
        expectEq(want, items, "items consumed in order");
        producer.put("late");
        expectEq("late", poll(got, 10000, "an item put after the consumer started"), "late item");
        waitFor("the queue to be empty", 10000, () -> { Stat st = a.checkExists().forPath(p); return st == null || st.getNumChildren() == 0; });
    }

    // ------------------------------------------------------------------ caches

    @SuppressWarnings("deprecation")
    static void nodeCache() throws Exception {
        CuratorFramework a = client(), bc = client();
        String p = ROOT + "/nodecache";
        NodeCache nc = closeLater(new NodeCache(bc, p));
        AtomicInteger changes = new AtomicInteger();
        nc.getListenable().addListener(changes::incrementAndGet);
        nc.start(true);
        expect(nc.getCurrentData() == null, "no data for a missing node");
        a.create().forPath(p, b("1"));
        waitFor("NodeCache to see the created node", 10000, () -> nc.getCurrentData() != null && "1".equals(s(nc.getCurrentData().getData())));
        a.setData().forPath(p, b("2"));
        waitFor("NodeCache to see the new data", 10000, () -> "2".equals(s(nc.getCurrentData().getData())));
        a.delete().forPath(p);
        waitFor("NodeCache to see the delete", 10000, () -> nc.getCurrentData() == null);
        expect(changes.get() >= 3, "listener called for create, change and delete: " + changes.get());
    }

    @SuppressWarnings("deprecation")
    static void pathChildrenCache() throws Exception {
        CuratorFramework a = client(), bc = client();
        String p = ROOT + "/pcc";
        a.create().forPath(p, new byte[0]);
        a.create().forPath(p + "/pre", b("0"));
        PathChildrenCache pcc = closeLater(new PathChildrenCache(bc, p, true));
        BlockingQueue<String> ev = new LinkedBlockingQueue<>();
        pcc.getListenable().addListener((c, e) -> {
            String path = e.getData() == null ? "" : " " + e.getData().getPath() + "=" + s(e.getData().getData());
            ev.add(e.getType() + path);
        });
        pcc.start(PathChildrenCache.StartMode.POST_INITIALIZED_EVENT);
        expectEq("CHILD_ADDED " + p + "/pre=0", poll(ev, 10000, "initial child"), "initial child event");
        expectEq("INITIALIZED", poll(ev, 10000, "INITIALIZED"), "initialized event");
        a.create().forPath(p + "/c1", b("1"));
        expectEq("CHILD_ADDED " + p + "/c1=1", poll(ev, 10000, "CHILD_ADDED"), "added");
        a.setData().forPath(p + "/c1", b("2"));
        expectEq("CHILD_UPDATED " + p + "/c1=2", poll(ev, 10000, "CHILD_UPDATED"), "updated");
        a.delete().forPath(p + "/c1");
        expectEq("CHILD_REMOVED " + p + "/c1=2", poll(ev, 10000, "CHILD_REMOVED"), "removed");
        expectEq(1, pcc.getCurrentData().size(), "cache contents");
    }

    static void treeCache() throws Exception {
        CuratorFramework a = client(), bc = client();
        String p = ROOT + "/tc";
        a.create().forPath(p, b("r"));
        TreeCache tc = closeLater(TreeCache.newBuilder(bc, p).build());
        BlockingQueue<String> ev = new LinkedBlockingQueue<>();
        tc.getListenable().addListener((c, e) -> {
            if (e.getType() == TreeCacheEvent.Type.CONNECTION_SUSPENDED || e.getType() == TreeCacheEvent.Type.CONNECTION_RECONNECTED) return;
            ev.add(e.getType() + (e.getData() == null ? "" : " " + e.getData().getPath()));
        });
        tc.start();
        expectEq("NODE_ADDED " + p, poll(ev, 10000, "root added"), "root");
        expectEq("INITIALIZED", poll(ev, 10000, "initialized"), "initialized");
        a.create().forPath(p + "/x", b("x"));
        expectEq("NODE_ADDED " + p + "/x", poll(ev, 10000, "child added"), "child added");
        a.create().forPath(p + "/x/y", b("y"));
        expectEq("NODE_ADDED " + p + "/x/y", poll(ev, 10000, "grandchild added"), "grandchild added");
        a.setData().forPath(p + "/x/y", b("y2"));
        expectEq("NODE_UPDATED " + p + "/x/y", poll(ev, 10000, "grandchild updated"), "grandchild updated");
        expectEq("y2", s(tc.getCurrentData(p + "/x/y").getData()), "cached data");
        a.delete().forPath(p + "/x/y");
        expectEq("NODE_REMOVED " + p + "/x/y", poll(ev, 10000, "grandchild removed"), "grandchild removed");
    }

    static void curatorCache() throws Exception {
        CuratorFramework a = client(), bc = client();
        String p = ROOT + "/cc";
        a.create().forPath(p, b("r"));
        a.create().forPath(p + "/pre", b("0"));
        CuratorCache cache = closeLater(CuratorCache.build(bc, p));
        BlockingQueue<String> ev = new LinkedBlockingQueue<>();
        CountDownLatch init = new CountDownLatch(1);
        cache.listenable().addListener(CuratorCacheListener.builder()
                .forCreates(n -> ev.add("create " + n.getPath() + "=" + s(n.getData())))
                .forChanges((o, n) -> ev.add("change " + n.getPath() + "=" + s(o.getData()) + "->" + s(n.getData())))
                .forDeletes(o -> ev.add("delete " + o.getPath()))
                .forInitialized(init::countDown)
                .afterInitialized()
                .build());
        cache.start();
        expect(init.await(10, TimeUnit.SECONDS), "CuratorCache initialized");
        expectEq(2, cache.size(), "initial cache size");
        // One change at a time: the cache reads data after each event, so quick successive
        // changes to a node may legitimately be coalesced.
        Body[] steps = {
            () -> a.create().forPath(p + "/x", b("1")),
            () -> a.create().forPath(p + "/x/y", b("2")),
            () -> a.setData().forPath(p + "/x/y", b("3")),
            () -> a.delete().forPath(p + "/x/y"),
            () -> a.delete().forPath(p + "/x"),
        };
        String[] want = {"create " + p + "/x=1", "create " + p + "/x/y=2", "change " + p + "/x/y=2->3", "delete " + p + "/x/y", "delete " + p + "/x"};
        for (int i = 0; i < steps.length; i++) {
            steps[i].run();
            expectEq(want[i], poll(ev, 10000, "CuratorCache event for step " + (i + 1) + " (" + want[i] + ")"), "CuratorCache event " + (i + 1));
        }
        Optional<ChildData> pre = cache.get(p + "/pre");
        expect(pre.isPresent() && "0".equals(s(pre.get().getData())), "cache.get of a node present before start");
    }

    // ------------------------------------------------------------------ persistent nodes

    static void persistentNode() throws Exception {
        CuratorFramework a = client(), bc = client();
        String p = ROOT + "/pnode";
        bc.create().forPath(p, new byte[0]);
        PersistentNode pn = closeLater(new PersistentNode(a, CreateMode.EPHEMERAL, false, p + "/me", b("pn")));
        pn.start();
        expect(pn.waitForInitialCreate(10, TimeUnit.SECONDS), "initial create");
        expectEq(hex(sessionId(a)), hex(bc.checkExists().forPath(p + "/me").getEphemeralOwner()), "ephemeral owned by a");
        bc.delete().forPath(p + "/me");
        waitFor("PersistentNode to recreate its deleted node", 10000, () -> bc.checkExists().forPath(p + "/me") != null);
        pn.setData(b("pn2"));
        waitFor("new data visible", 10000, () -> "pn2".equals(s(bc.getData().forPath(p + "/me"))));

        PersistentNode seq = closeLater(new PersistentNode(a, CreateMode.EPHEMERAL_SEQUENTIAL, true, p + "/seq-", b("s")));
        seq.start();
        expect(seq.waitForInitialCreate(10, TimeUnit.SECONDS), "initial create of a protected sequential node");
        String actual = seq.getActualPath();
        expect(actual != null && Pattern.matches(Pattern.quote(p + "/") + "_c_[0-9a-f-]{36}-seq-\\d{10}", actual), "actual path: " + actual);
        pn.close();
        seq.close();
        waitFor("closed PersistentNodes to delete their nodes", 10000, () -> bc.getChildren().forPath(p).isEmpty());
    }

    static void persistentTtlNode() throws Exception {
        CuratorFramework a = client(), bc = client();
        String p = ROOT + "/pttl";
        PersistentTtlNode tn = new PersistentTtlNode(a, p, 1000, b("ttl"));
        toClose.add(tn::close);
        tn.start();
        expect(tn.waitForInitialCreate(10, TimeUnit.SECONDS), "initial create");
        Stat st = bc.checkExists().forPath(p);
        expect(st != null, "node exists");
        waitFor("touch child", 5000, () -> bc.checkExists().forPath(p + "/" + PersistentTtlNode.DEFAULT_CHILD_NODE_NAME) != null);
        expectEq("ttl", s(bc.getData().forPath(p)), "data");
        Thread.sleep(3000);
        expect(bc.checkExists().forPath(p) != null, "node kept alive by touching past its TTL");
        tn.close();
        waitFor("the node to go away after close (TTL child expires, then the container)", 25000, () -> bc.checkExists().forPath(p) == null);
    }

    // ------------------------------------------------------------------ service discovery

    static void serviceDiscovery() throws Exception {
        CuratorFramework a = client(), bc = client();
        String p = ROOT + "/services";
        ServiceInstance<String> i1 = ServiceInstance.<String>builder().name("web").id("w1").address("127.0.0.1").port(8081).payload("one").build();
        ServiceInstance<String> i2 = ServiceInstance.<String>builder().name("web").id("w2").address("127.0.0.1").port(8082).payload("two").build();
        ServiceInstance<String> db = ServiceInstance.<String>builder().name("db").id("d1").address("127.0.0.2").port(5432).payload("pg").build();
        ServiceDiscovery<String> da = closeLater(ServiceDiscoveryBuilder.builder(String.class).client(a).basePath(p).thisInstance(i1).build());
        da.start();
        ServiceDiscovery<String> dbd = closeLater(ServiceDiscoveryBuilder.builder(String.class).client(bc).basePath(p).thisInstance(i2).build());
        dbd.start();
        dbd.registerService(db);
        List<String> names = new ArrayList<>(dbd.queryForNames());
        Collections.sort(names);
        expectEq(Arrays.asList("db", "web"), names, "service names");
        Set<String> ids = new HashSet<>();
        for (ServiceInstance<String> i : da.queryForInstances("web")) ids.add(i.getId());
        expectEq(new HashSet<>(Arrays.asList("w1", "w2")), ids, "instances of web");
        ServiceInstance<String> got = da.queryForInstance("web", "w2");
        expectEq(8082, got.getPort(), "port of w2");
        expectEq("two", got.getPayload(), "payload of w2");
        expect(da.queryForInstance("web", "nope") == null, "unknown instance id");

        ServiceCache<String> cache = closeLater(dbd.serviceCacheBuilder().name("web").build());
        cache.start();
        waitFor("ServiceCache to list 2 instances", 10000, () -> cache.getInstances().size() == 2);
        ServiceProvider<String> prov = closeLater(dbd.serviceProviderBuilder().serviceName("web").build());
        prov.start();
        expect(prov.getInstance() != null, "ServiceProvider gives an instance");
        expectEq(2, prov.getAllInstances().size(), "ServiceProvider instances");

        ServiceInstance<String> i2b = ServiceInstance.<String>builder().name("web").id("w2").address("127.0.0.1").port(8082).payload("two-b").build();
        dbd.updateService(i2b);
        waitFor("updated payload", 10000, () -> "two-b".equals(da.queryForInstance("web", "w2").getPayload()));
        dbd.unregisterService(db);
        expect(dbd.queryForInstance("db", "d1") == null, "unregistered instance gone");
        // Registered instances are ephemeral: closing a's client removes w1.
        da.close();
        a.close();
        waitFor("w1 to disappear once its client closed (instances now: " + ids + ")", 10000, () -> {
            ids.clear();
            for (ServiceInstance<String> i : dbd.queryForInstances("web")) ids.add(i.getId());
            return ids.size() == 1;
        });
        waitFor("ServiceCache to drop w1", 10000, () -> cache.getInstances().size() == 1 && cache.getInstances().get(0).getId().equals("w2"));
    }

    // ------------------------------------------------------------------ session expiry

    static void sessionExpiry() throws Exception {
        CuratorFramework a = client(6000), bc = client();
        String p = ROOT + "/expiry";
        bc.create().forPath(p, new byte[0]);
        BlockingQueue<ConnectionState> states = new LinkedBlockingQueue<>();
        a.getConnectionStateListenable().addListener((c, s) -> states.add(s));
        a.create().withMode(CreateMode.EPHEMERAL).forPath(p + "/plain", b("x"));
        PersistentNode pn = closeLater(new PersistentNode(a, CreateMode.EPHEMERAL, false, p + "/persistent", b("y")));
        pn.start();
        expect(pn.waitForInitialCreate(10, TimeUnit.SECONDS), "PersistentNode created");
        ZooKeeper zk = a.getZookeeperClient().getZooKeeper();
        long sid = zk.getSessionId();
        byte[] pw = zk.getSessionPasswd();
        int negotiated = zk.getSessionTimeout();
        expect(negotiated >= 4000 && negotiated <= 6000, "negotiated session timeout " + negotiated);

        // Curator's old KillSession: attach a second connection to the same session and close it.
        // The first connection is dropped when the second attaches and reconnects at once; if it
        // wins the session back before the close, the close is lost, so try a few times.
        List<ConnectionState> seen = new ArrayList<>();
        for (int attempt = 1; !seen.contains(ConnectionState.LOST); attempt++) {
            expect(attempt <= 5, "no LOST after 5 attempts to end the session (states " + seen + ")");
            CountDownLatch connected = new CountDownLatch(1);
            ZooKeeper killer = new ZooKeeper(connect, 6000, e -> { if (e.getState() == Watcher.Event.KeeperState.SyncConnected) connected.countDown(); }, sid, pw);
            try {
                expect(connected.await(10, TimeUnit.SECONDS), "second connection attached to the session");
                expectEq(hex(sid), hex(killer.getSessionId()), "same session id on the second connection");
            } finally {
                killer.close();
            }
            long deadline = System.currentTimeMillis() + 5000;
            ConnectionState s;
            while (!seen.contains(ConnectionState.LOST) && (s = states.poll(Math.max(1, deadline - System.currentTimeMillis()), TimeUnit.MILLISECONDS)) != null) seen.add(s);
        }
        while (!seen.contains(ConnectionState.RECONNECTED) || seen.lastIndexOf(ConnectionState.RECONNECTED) < seen.indexOf(ConnectionState.LOST))
            seen.add(poll(states, 20000, "RECONNECTED after LOST (so far " + seen + ")"));
        long newSid = sessionId(a);
        expect(newSid != sid, "a new session after expiry");
        waitFor("the expired session's ephemeral to be gone", 10000, () -> bc.checkExists().forPath(p + "/plain") == null);
        waitFor("PersistentNode to recreate its node in the new session", 15000, () -> {
            Stat st = bc.checkExists().forPath(p + "/persistent");
            return st != null && st.getEphemeralOwner() == newSid;
        });
        // Resuming the dead session is refused.
        CountDownLatch expired = new CountDownLatch(1);
        ZooKeeper ghost = new ZooKeeper(connect, 6000, e -> { if (e.getState() == Watcher.Event.KeeperState.Expired) expired.countDown(); }, sid, pw);
        try {
            expect(expired.await(10, TimeUnit.SECONDS), "reconnecting with an expired session id gets Expired");
        } finally {
            ghost.close();
        }
    }
}
