/*
 * memlane: a tiny in-process launcher for a real single-node Elasticsearch 8.x, used by the
 * project's tests instead of Docker. It lives in package org.elasticsearch.node because the hooks
 * it needs (Node(NodeConstruction), NodeServiceProvider) are package-private.
 *
 * Pinned to Elasticsearch 8.19.21: these internals change between minor versions.
 *
 * Usage: java -cp target/classes:target/lib/* org.elasticsearch.node.MemlaneEsNode [httpPort] [homeDir] [portFile]
 *   httpPort  0 or empty: the OS picks a free port (env ES_HTTP_PORT)
 *   homeDir   fresh directory; config/, data/ and logs/ are created inside it (env ES_HOME_DIR, required)
 *   portFile  file that receives the bound HTTP port once HTTP is up (env ES_PORT_FILE; default homeDir/http.port)
 * Env: ES_CLUSTER_NAME (default memlane-test), ES_NODE_NAME (default memlane-node).
 * Multi-node (all optional; without ES_SEED_HOSTS the node runs with discovery.type=single-node):
 *   ES_SEED_HOSTS           comma-separated transport addresses to join ("" for the first master)
 *   ES_INITIAL_MASTER_NODES comma-separated node names that bootstrap the cluster (first start)
 *   ES_NODE_ROLES           comma-separated node.roles (default: every role)
 *   ES_TRANSPORT_PORT       transport port (default 0: the OS picks one); the bound port is
 *                           written next to the port file, as transport.port
 */
package org.elasticsearch.node;

import org.elasticsearch.Build;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.ClusterState;
import org.elasticsearch.cluster.metadata.IndexNameExpressionResolver;
import org.elasticsearch.cluster.node.DiscoveryNodes;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.common.io.stream.NamedWriteableRegistry;
import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.ClusterSettings;
import org.elasticsearch.common.settings.IndexScopedSettings;
import org.elasticsearch.common.settings.SettingsFilter;
import org.elasticsearch.features.NodeFeature;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestController;
import org.elasticsearch.rest.RestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.xcontent.XContentBuilder;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.http.HttpServerTransport;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.plugins.PluginDescriptor;
import org.elasticsearch.plugins.PluginsLoader;
import org.elasticsearch.plugins.PluginsService;
import org.elasticsearch.transport.TransportService;
import org.elasticsearch.transport.netty4.Netty4Plugin;

import java.io.PrintStream;
import java.lang.reflect.Constructor;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.function.Supplier;

public class MemlaneEsNode extends Node {

    /** Plugins that are on the classpath rather than in a modules/ or plugins/ directory. */
    private static final List<Class<? extends Plugin>> CLASSPATH_PLUGINS = List.of(Netty4Plugin.class, RootPlugin.class);

    /**
     * GET / and HEAD / (the "info" and "ping" APIs of the clients). In 8.x they live in the rest-root module,
     * which is not published to Maven Central, so this is a small re-implementation with the same JSON shape.
     */
    public static final class RootPlugin extends Plugin implements ActionPlugin {
        private volatile ClusterService clusterService;

        @Override
        public Collection<?> createComponents(PluginServices services) {
            clusterService = services.clusterService();
            return List.of();
        }

        @Override
        public Collection<RestHandler> getRestHandlers(
            Settings settings,
            NamedWriteableRegistry namedWriteableRegistry,
            RestController restController,
            ClusterSettings clusterSettings,
            IndexScopedSettings indexScopedSettings,
            SettingsFilter settingsFilter,
            IndexNameExpressionResolver indexNameExpressionResolver,
            Supplier<DiscoveryNodes> nodesInCluster,
            Predicate<NodeFeature> clusterSupportsFeature
        ) {
            final String nodeName = Node.NODE_NAME_SETTING.get(settings);
            return List.of(new BaseRestHandler() {
                @Override
                public String getName() {
                    return "memlane_main_action";
                }

                @Override
                public List<Route> routes() {
                    return List.of(new Route(RestRequest.Method.GET, "/"), new Route(RestRequest.Method.HEAD, "/"));
                }

                @Override
                public boolean canTripCircuitBreaker() {
                    return false;
                }

                @Override
                protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) {
                    return channel -> {
                        ClusterState state = clusterService.state();
                        Build build = Build.current();
                        XContentBuilder b = channel.newBuilder();
                        if (request.hasParam("pretty") == false) {
                            b.prettyPrint().lfAtEnd();
                        }
                        b.startObject()
                            .field("name", nodeName)
                            .field("cluster_name", state.getClusterName().value())
                            .field("cluster_uuid", state.metadata().clusterUUID())
                            .startObject("version")
                            .field("number", build.qualifiedVersion())
                            .field("build_flavor", "default")
                            .field("build_type", build.type().displayName())
                            .field("build_hash", build.hash())
                            .field("build_date", build.date())
                            .field("build_snapshot", build.isSnapshot())
                            .field("lucene_version", org.apache.lucene.util.Version.LATEST.toString())
                            .field("minimum_wire_compatibility_version", build.minWireCompatVersion())
                            .field("minimum_index_compatibility_version", build.minIndexCompatVersion())
                            .endObject()
                            .field("tagline", "You Know, for Search")
                            .endObject();
                        channel.sendResponse(new RestResponse(RestStatus.OK, b));
                    };
                }
            });
        }
    }

    MemlaneEsNode(Environment environment) {
        super(NodeConstruction.prepareConstruction(environment, emptyPluginsLoader(), new ClasspathPluginsProvider(), true));
    }

    private static PluginsLoader emptyPluginsLoader() {
        return PluginsLoader.createPluginsLoader(Set.of(), Set.of(), Map.of(), false);
    }

    /** Service provider whose plugin service also returns the classpath plugins. */
    static final class ClasspathPluginsProvider extends NodeServiceProvider {
        @Override
        PluginsService newPluginService(Environment environment, PluginsLoader pluginsLoader) {
            return new ClasspathPluginsService(environment.settings(), environment.configDir(), pluginsLoader);
        }
    }

    /**
     * PluginsService whose plugin list is extended with instances of CLASSPATH_PLUGINS. Its element
     * type (PluginsService.LoadedPlugin) is package-private, hence the raw list and the reflection.
     */
    static final class ClasspathPluginsService extends PluginsService {
        private List<Object> all;

        ClasspathPluginsService(Settings settings, Path configPath, PluginsLoader pluginsLoader) {
            super(settings, configPath, pluginsLoader);
        }

        @Override
        @SuppressWarnings({ "rawtypes", "unchecked" })
        protected synchronized List plugins() {
            if (all == null) {
                List<Object> list = new ArrayList<>(super.plugins());
                try {
                    Class<?> loadedPlugin = Class.forName(PluginsService.class.getName() + "$LoadedPlugin");
                    Constructor<?> ctor = loadedPlugin.getDeclaredConstructor(PluginDescriptor.class, Plugin.class, ClassLoader.class);
                    ctor.setAccessible(true);
                    for (Class<? extends Plugin> cls : CLASSPATH_PLUGINS) {
                        PluginDescriptor descriptor = new PluginDescriptor(
                            cls.getName(), "classpath plugin", "NA", org.elasticsearch.Build.current().version(), "17",
                            cls.getName(), null, List.of(), false, false, false, false
                        );
                        Plugin plugin = cls.getDeclaredConstructor().newInstance();
                        list.add(ctor.newInstance(descriptor, plugin, cls.getClassLoader()));
                    }
                } catch (ReflectiveOperationException e) {
                    throw new IllegalStateException("cannot load classpath plugins", e);
                }
                all = List.copyOf(list);
            }
            return all;
        }
    }

    private static List<String> csv(String value) {
        List<String> out = new ArrayList<>();
        for (String part : value.split(",")) {
            if (part.isBlank() == false) {
                out.add(part.trim());
            }
        }
        return out;
    }

    private static void writeAtomically(Path file, String text) throws java.io.IOException {
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        Files.writeString(tmp, text, StandardCharsets.UTF_8);
        Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }

    private static String arg(String[] args, int i, String env) {
        String v = args.length > i ? args[i] : System.getenv(env);
        return v == null ? "" : v.trim();
    }

    public static void main(String[] args) throws Exception {
        final PrintStream out = System.out; // the log configuration below redirects System.out into log4j
        String portArg = arg(args, 0, "ES_HTTP_PORT");
        String homeArg = arg(args, 1, "ES_HOME_DIR");
        if (homeArg.isEmpty()) {
            System.err.println("usage: MemlaneEsNode [httpPort|0] <homeDir> [portFile]");
            System.exit(2);
        }
        Path home = Path.of(homeArg).toAbsolutePath();
        String portFileArg = arg(args, 2, "ES_PORT_FILE");
        Path portFile = portFileArg.isEmpty() ? home.resolve("http.port") : Path.of(portFileArg).toAbsolutePath();
        String clusterName = System.getenv().getOrDefault("ES_CLUSTER_NAME", "memlane-test");
        String nodeName = System.getenv().getOrDefault("ES_NODE_NAME", "memlane-node");

        Path config = Files.createDirectories(home.resolve("config"));
        Files.createDirectories(home.resolve("data"));
        Files.createDirectories(home.resolve("logs"));
        Files.writeString(
            config.resolve("log4j2.properties"),
            String.join(
                "\n",
                "status = error",
                "appender.console.type = Console",
                "appender.console.name = console",
                "appender.console.layout.type = PatternLayout",
                "appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%n",
                "rootLogger.level = info",
                "rootLogger.appenderRef.console.ref = console",
                "logger.deprecation.name = org.elasticsearch.deprecation",
                "logger.deprecation.level = error",
                ""
            ),
            StandardCharsets.UTF_8
        );

        String seedHosts = System.getenv("ES_SEED_HOSTS");
        String transportPort = System.getenv().getOrDefault("ES_TRANSPORT_PORT", "0").trim();
        Settings.Builder builder = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("cluster.name", clusterName)
            .put("node.name", nodeName)
            .put("network.host", "127.0.0.1")
            .put("http.port", portArg.isEmpty() ? "0" : portArg)
            .put("transport.port", transportPort.isEmpty() ? "0" : transportPort)
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("action.destructive_requires_name", false)
            .put("bootstrap.memory_lock", false);
        if (seedHosts == null) {
            builder.put("discovery.type", "single-node");
        } else {
            // An explicit (possibly empty) seed list: never probe the default localhost:9300-9305,
            // where another test cluster may be listening.
            builder.putList("discovery.seed_hosts", csv(seedHosts));
            String masters = System.getenv("ES_INITIAL_MASTER_NODES");
            if (masters != null && masters.isBlank() == false) {
                builder.putList("cluster.initial_master_nodes", csv(masters));
            }
            String roles = System.getenv("ES_NODE_ROLES");
            if (roles != null && roles.isBlank() == false) {
                builder.putList("node.roles", csv(roles));
            }
        }
        Settings settings = builder.build();

        LogConfigurator.registerErrorListener();
        LogConfigurator.setClusterName(clusterName);
        LogConfigurator.setNodeName(nodeName);
        Environment environment = new Environment(settings, config);
        LogConfigurator.configure(environment, true);

        final MemlaneEsNode node;
        try {
            node = new MemlaneEsNode(environment);
        } catch (Throwable t) {
            t.printStackTrace(out);
            out.flush();
            System.exit(1);
            return;
        }
        final CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(30, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace(out);
            } finally {
                stopped.countDown();
            }
        }, "memlane-es-shutdown"));

        try {
            node.start();
            int port = node.injector().getInstance(HttpServerTransport.class).boundAddress().publishAddress().getPort();
            int tport = node.injector().getInstance(TransportService.class).boundAddress().publishAddress().getPort();
            writeAtomically(portFile.resolveSibling("transport.port"), tport + "\n");
            writeAtomically(portFile, port + "\n");
            out.println("ES_HTTP_PORT=" + port);
            out.flush();
        } catch (Throwable t) {
            t.printStackTrace(out);
            out.flush();
            System.exit(1); // runs the shutdown hook, which closes the node
        }

        // Node threads are non-daemon, but keep main alive explicitly until the shutdown hook ran.
        stopped.await();
    }
}
