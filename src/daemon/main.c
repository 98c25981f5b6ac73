/* netextd: the only privileged process of netext. Start-up, the event loop, signals and
 * shutdown. The event loop is sd-event (libsystemd): it gives timers, signals, and child
 * processes watched through pidfds in one loop, and the daemon runs under systemd anyway
 * (Type=notify, journald); see docs/architecture.md for the comparison with libuv/libev.
 *
 * Trust: runs as root. Trusts its command line and configuration file (root-owned), and
 * nothing else: extensions and control clients are handled by ext.c and control.c. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include <netext/netext.h>

#include "cgroup.h"
#include "daemon.h"
#include "dnsctl.h"
#include "dnsprov.h"
#include "pktfilter.h"
#include "tunnel.h"
#include "dnsproxy.h"
#include "dnsroutes.h"
#include "dp_nft.h"
#include "filter.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define NETEXT_TABLE "netext"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: netextd [options]\n"
		"  --state-dir DIR   state (SQLite database), default /var/lib/netext\n"
		"  --run-dir DIR     control socket, default /run/netext\n"
		"  --config FILE     configuration file (see netextd(8))\n"
		"  --cgroup PATH     cgroup for extensions, relative to the cgroup2 mount\n"
		"                    (default: below netextd's own cgroup)\n"
		"  --policy-dir DIR  managed policy drop-ins, default /etc/netext/policy.d\n"
		"  --developer       accept unsigned bundles and executables registered by path\n"
		"  --no-datapath     do not create the nftables table (control-plane only)\n"
		"  -v, --verbose     debug logging\n"
		"  --version         print the version\n"
		"  -h, --help        this help\n");
}

enum { OPT_STATE = 256, OPT_RUN, OPT_CONFIG, OPT_CGROUP, OPT_DEV, OPT_NODP, OPT_VERSION, OPT_POLICY };

static const struct option long_opts[] = {
	{ "state-dir", required_argument, NULL, OPT_STATE },
	{ "run-dir", required_argument, NULL, OPT_RUN },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "cgroup", required_argument, NULL, OPT_CGROUP },
	{ "developer", no_argument, NULL, OPT_DEV },
	{ "policy-dir", required_argument, NULL, OPT_POLICY },
	{ "no-datapath", no_argument, NULL, OPT_NODP },
	{ "verbose", no_argument, NULL, 'v' },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* The configuration file is read first; command-line options override it. */
static int parse_args(int argc, char **argv, struct daemon_options *o)
{
	int c, i;

	for (i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--config") && i + 1 < argc) {
			if (daemon_options_load(o, argv[i + 1]) < 0)
				return -EINVAL;
			ne_strscpy(o->config_path, argv[i + 1], sizeof(o->config_path));
		}
	while ((c = getopt_long(argc, argv, "vh", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_STATE: ne_strscpy(o->state_dir, optarg, sizeof(o->state_dir)); break;
		case OPT_RUN: ne_strscpy(o->run_dir, optarg, sizeof(o->run_dir)); break;
		case OPT_CONFIG: break;
		case OPT_CGROUP: ne_strscpy(o->cgroup, optarg, sizeof(o->cgroup)); break;
		case OPT_DEV: o->developer = true; break;
		case OPT_POLICY: ne_strscpy(o->policy_dir, optarg, sizeof(o->policy_dir)); break;
		case OPT_NODP: o->no_datapath = true; break;
		case 'v': o->verbose++; break;
		case OPT_VERSION: printf("netextd %s\n", NE_VERSION_STRING); exit(0);
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "netextd: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

/* Abstract Unix socket names live in the network namespace, so holding this one proves no
 * other netextd manages this namespace's table; a table found at start-up is then stale. */
static int take_netns_lock(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	static const char name[] = "netextd/netns-lock";
	int fd;

	memcpy(sa.sun_path + 1, name, sizeof(name) - 1);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ne_negerrno();
	if (bind(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + sizeof(name))) < 0) {
		int r = ne_negerrno();

		close(fd);
		return r;
	}
	return fd; /* held until exit */
}

int daemon_apply_ruleset(struct daemon *d)
{
	struct dp_ruleset rs;
	int r;

	if (!d->nft)
		return 0;
	dp_ruleset_init_base(&rs, NETEXT_TABLE);
	r = filter_add_rules(d, &rs);
	if (r == 0)
		r = dnsproxy_add_rules(d, &rs);
	if (r == 0)
		r = pktfilter_add_rules(d, &rs);
	if (r == 0)
		r = tunnel_add_rules(d, &rs);
	if (r == 0)
		r = dp_nft_apply(d->nft, &rs);
	dp_ruleset_free(&rs);
	if (r < 0)
		log_warnx("datapath: cannot apply table inet %s: %s", NETEXT_TABLE, strerror(-r));
	return r;
}

static int setup_datapath(struct daemon *d)
{
	bool stale = false;
	int r;

	r = dp_nft_open(&d->nft);
	if (r < 0)
		return r;
	r = dp_nft_probe_queue(d->nft, (enum dp_queue_backend *)&d->queue_backend);
	if (r < 0)
		return r;
	if (dp_nft_table_exists(d->nft, NETEXT_TABLE, &stale) == 0 && stale)
		log_warnx("removing stale table inet %s left by an instance that did not stop cleanly",
			  NETEXT_TABLE);
	r = daemon_apply_ruleset(d);
	if (r < 0)
		return r;
	log_info("datapath: table inet %s ready", NETEXT_TABLE);
	return 0;
}

static void teardown_datapath(struct daemon *d)
{
	if (!d->nft)
		return;
	if (dp_nft_table_delete(d->nft, NETEXT_TABLE) < 0)
		log_warnx("could not remove table inet %s", NETEXT_TABLE);
	dp_nft_close(d->nft);
	d->nft = NULL;
}

static int setup_cgroup(struct daemon *d)
{
	char self[PATH_MAX];
	const char *base;
	int r;

	r = cgroup_find_mount(d->cgroup_mount, sizeof(d->cgroup_mount));
	if (r < 0) {
		log_warnx("no cgroup v2 mount: extensions run without a cgroup of their own");
		d->cgroup_mount[0] = '\0';
		return 0;
	}
	if (d->opt.cgroup[0]) {
		base = d->opt.cgroup;
	} else {
		r = cgroup_self_path(self, sizeof(self));
		if (r < 0)
			return r;
		snprintf(self + strlen(self), sizeof(self) - strlen(self), "%snetext",
			 self[strlen(self) - 1] == '/' ? "" : "/");
		base = self;
	}
	while (*base == '/')
		base++;
	ne_strscpy(d->cgroup_base, base, sizeof(d->cgroup_base));
	cgroup_remove(d->cgroup_mount, d->cgroup_base); /* leftovers of a killed instance */
	r = cgroup_create(d->cgroup_mount, d->cgroup_base);
	if (r < 0)
		return r;
	log_info("cgroup: extensions run below %s/%s", d->cgroup_mount, d->cgroup_base);
	return 0;
}

static gid_t lookup_group(const char *name)
{
	struct group *g = getgrnam(name);

	return g ? g->gr_gid : (gid_t)-1;
}

void daemon_maybe_exit(struct daemon *d)
{
	if (d->shutting_down && ext_all_exited(d))
		sd_event_exit(d->event, 0);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct daemon *d = userdata;

	if (si->ssi_signo == SIGHUP) {
		log_info("SIGHUP: checking waiting requests against the managed policy");
		sysext_start(d);
		return 0;
	}
	if (d->shutting_down) {
		log_warnx("second %s: not waiting for extensions any longer", strsignal((int)si->ssi_signo));
		sd_event_exit(d->event, 0);
		return 0;
	}
	log_info("%s: stopping extensions", strsignal((int)si->ssi_signo));
	d->shutting_down = true;
	sd_notify(0, "STOPPING=1");
	ext_shutdown_all(d);
	daemon_maybe_exit(d);
	(void)s;
	return 0;
}

static int setup_loop(struct daemon *d)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
	sigset_t mask;
	size_t i;
	int r;

	sigemptyset(&mask);
	for (i = 0; i < NE_ARRAY_SIZE(sigs); i++)
		sigaddset(&mask, sigs[i]);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	r = sd_event_default(&d->event);
	if (r < 0)
		return r;
	for (i = 0; i < NE_ARRAY_SIZE(sigs); i++) {
		r = sd_event_add_signal(d->event, NULL, sigs[i], on_signal, d);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Removing the cgroups kills any extension still alive (after a second signal), so no
 * extension outlives the daemon. */
static void final_cleanup(struct daemon *d)
{
	control_close(d->control);
	d->control = NULL;
	sysext_fini(d);
	tunnel_fini(d); /* devices, routes, rules and DNS routes, while the DNS engine still runs */
	dnsproxy_fini(d); /* in-flight queries are answered SERVFAIL; listeners, rules, routes go */
	dnsprov_fini(d);
	dnsroutes_free(d->dns_routes);
	d->dns_routes = NULL;
	pktfilter_fini(d); /* held packets get the fail policy before the queues and table go */
	filter_fini(d); /* waiting flows are let go before the table (and its queue rules) goes */
	if (d->cgroup_mount[0] && d->cgroup_base[0])
		cgroup_remove(d->cgroup_mount, d->cgroup_base);
	teardown_datapath(d);
	store_close(d->store);
	d->store = NULL;
}

/* Split-DNS routes: the configuration file's first (they win over stored ones), then the
 * control API's from the store (dnsctl_load); the default route falls back to resolv.conf. */
static int setup_dns_routes(struct daemon *d)
{
	int r = dnsroutes_new(&d->dns_routes);

	if (r < 0)
		return r;
	r = dnsroutes_add_lines(d->dns_routes, (const char (*)[512])d->opt.dns_routes, d->opt.n_dns_routes);
	if (r < 0) {
		log_warnx("dns: cannot add the configuration's routes: %s", strerror(-r));
		return r;
	}
	if (dnsroutes_set_resolv_conf(d->dns_routes, d->opt.dns_resolv_conf) < 0)
		log_info("dns: no nameservers in %s yet; the default route follows it when it changes",
			 d->opt.dns_resolv_conf);
	return 0;
}

static int run(struct daemon *d)
{
	int r, lock = -1;

	/* Everyone reaches the control socket (it authorises each request); umask 077 would
	 * make a new run dir private. */
	if (mkdir(d->opt.run_dir, 0755) == 0)
		chmod(d->opt.run_dir, 0755);
	else if (errno != EEXIST)
		fatal("cannot create run dir %s", d->opt.run_dir);
	r = setup_loop(d);
	if (r < 0)
		fatalx("cannot set up the event loop: %s", strerror(-r));
	if (!d->opt.no_datapath) {
		lock = take_netns_lock();
		if (lock < 0)
			fatalx("another netextd manages this network namespace (%s)", strerror(-lock));
	}
	r = store_open(d->opt.state_dir, &d->store);
	if (r < 0)
		fatalx("cannot open the state in %s: %s", d->opt.state_dir, strerror(-r));
	d->admin_gid = lookup_group(d->opt.admin_group);
	r = setup_cgroup(d);
	if (r < 0)
		goto fail;
	if (!d->opt.no_datapath) {
		r = setup_datapath(d);
		if (r < 0) {
			log_warnx("datapath: cannot set up nftables: %s", strerror(-r));
			goto fail;
		}
	}
	r = filter_init(d);
	if (r < 0) {
		log_warnx("cannot set up the content filter: %s", strerror(-r));
		goto fail;
	}
	r = setup_dns_routes(d);
	if (r == 0)
		r = dnsctl_load(d);
	if (r == 0)
		r = dnsprov_init(d);
	if (r == 0)
		r = dnsproxy_init(d);
	if (r < 0) {
		log_warnx("cannot set up the DNS proxy: %s", strerror(-r));
		goto fail;
	}
	r = pktfilter_init(d);
	if (r < 0) {
		log_warnx("cannot set up the packet filter: %s", strerror(-r));
		goto fail;
	}
	r = tunnel_init(d);
	if (r < 0) {
		log_warnx("cannot set up packet tunnels: %s", strerror(-r));
		goto fail;
	}
	r = sysext_init(d);
	if (r < 0) {
		log_warnx("cannot set up the bundle store in %s: %s", d->opt.state_dir, strerror(-r));
		goto fail;
	}
	r = control_open(d, &d->control);
	if (r < 0)
		goto fail;
	ext_load_all(d);
	sysext_start(d);
	d->started_usec = ne_now_usec();
	sd_notifyf(0, "READY=1\nSTATUS=running; control socket %s/netextd.sock", d->opt.run_dir);
	log_info("netextd %s ready (state %s, run %s%s)", NE_VERSION_STRING, d->opt.state_dir,
		 d->opt.run_dir, d->opt.developer ? ", developer mode" : "");
	r = sd_event_loop(d->event);
	if (!ext_all_exited(d))
		log_warnx("exiting with extensions still alive; their cgroup is killed");
fail:
	final_cleanup(d);
	if (lock >= 0)
		close(lock);
	log_info("netextd stopped");
	return r < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	static struct daemon d;

	/* Files are private unless made otherwise on purpose (the database holds
	 * configuration options; the bundle store sets its modes explicitly). */
	umask(077);
	log_init("netextd", 0);
	daemon_options_defaults(&d.opt);
	if (parse_args(argc, argv, &d.opt) < 0)
		return 2;
	log_set_verbose(d.opt.verbose);
	if (geteuid() != 0)
		fatalx("netextd must run as root: it manages nftables and starts extensions as other users");
	ne_list_init(&d.exts);
	ne_list_init(&d.ops);
	d.bundles_fd = -1;
	return run(&d);
}
