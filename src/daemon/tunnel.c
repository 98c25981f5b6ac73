/* The packet-tunnel provider's daemon side: tunnel.h, docs/tunnel.md.
 *
 * Trust: the provider is foreign code. It may choose addresses, routes and DNS servers for
 * its own tunnel (that is what a VPN is for), but nothing else: every string is checked
 * (tunnel_plan.c), the device, table, rules and marks are fixed by the slot netextd chose,
 * routes go only into that slot's table, and everything is removed when the provider goes.
 * The TUN fds it gets are queues of its own device only. A bad value is an error result; only
 * frames that do not decode are faults. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <netext/netext.h>

#include "cgroup.h"
#include "daemon.h"
#include "dnsproxy.h"
#include "dnsroutes.h"
#include "dp_nft.h"
#include "dp_route.h"
#include "log.h"
#include "store.h"
#include "tunnel.h"
#include "util.h"
#include "wire.h"

#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif
#define TUNNEL_VNET_HDR_LEN 10
#define TUNNEL_SOCKBUF (4 << 20)
#define TUNNEL_APPS_MAX 8
#define TUNNEL_RECORDS_MAX 64
#define TUNNEL_WATCHERS_MAX 16
#define TUNNEL_CONNECTED_MAX 128
#define TUNNEL_DNS_ROUTES_MAX NE_WIRE_TUNNEL_MATCH_MAX

enum tstate { T_INVALID, T_DISCONNECTED, T_CONNECTING, T_CONNECTED, T_REASSERTING, T_DISCONNECTING };
static const char *const tstate_names[] = {
	[T_INVALID] = "invalid", [T_DISCONNECTED] = "disconnected", [T_CONNECTING] = "connecting",
	[T_CONNECTED] = "connected", [T_REASSERTING] = "reasserting",
	[T_DISCONNECTING] = "disconnecting",
};

/* One per packet-tunnel configuration that was started since netextd began (kept after it
 * stops for its state and last error). A slot only while the provider is present. */
struct tunnel {
	bool used;
	char config[NE_WIRE_NAME_MAX + 1];
	char extension[NE_WIRE_NAME_MAX + 1];
	struct ext *ext;
	uint32_t handle;
	int slot;                      /* -1: none */
	enum tstate state;
	uint64_t since;                /* unix ms */
	int last_errno;
	char last_error[512];
	uint64_t last_error_time;
	/* options: configuration's merged with tunnel.start's */
	char ifname_opt[IFNAMSIZ];
	bool force_all;
	bool privileged_ports;    /* option privileged_ports=yes: transport ports < 1024 */
	size_t n_apps;
	char apps[TUNNEL_APPS_MAX][256];
	char option_error[256];        /* a bad option: the first settings are refused with it */
	size_t n_start;                /* tunnel.start's options */
	char *start_keys[NE_WIRE_OPTIONS_MAX], *start_values[NE_WIRE_OPTIONS_MAX];
	/* the device */
	int fds[NE_WIRE_TUNNEL_QUEUES_MAX];
	unsigned nq;
	char ifname[IFNAMSIZ];
	unsigned ifindex;
	uint32_t offloads;
	uint32_t mtu;                  /* the device's, as last set */
	/* applied settings, NULL when none (cleared) */
	struct tunnel_settings *s;
	bool per_app;
	char dns_note[256];
	/* The extension died with the kill switch on: its chains stay until the restarted
	 * provider applies settings, the tunnel is stopped, or no restart will come. */
	bool ks_held;
	bool ks_held_local;            /* it had excludeLocalNetworks */
};

static struct {
	struct daemon *d;
	struct dp_route *rt;
	struct tunnel t[TUNNEL_RECORDS_MAX];
	bool slot_used[TUNNEL_MAX];
	struct ctl_req *watchers[TUNNEL_WATCHERS_MAX];
	uint8_t fbuf[NE_WIRE_MAX];
	struct ne_msg_tunnel_settings msg;
	struct tunnel_plan plan;
	struct dp_prefix connected[TUNNEL_CONNECTED_MAX];
	size_t n_connected;
} *T;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct tunnel *find(const char *config)
{
	size_t i;

	for (i = 0; T && i < TUNNEL_RECORDS_MAX; i++)
		if (T->t[i].used && !strcmp(T->t[i].config, config))
			return &T->t[i];
	return NULL;
}

static struct tunnel *find_or_add(const char *config)
{
	struct tunnel *t = find(config);
	size_t i, oldest = TUNNEL_RECORDS_MAX;

	if (t || !T)
		return t;
	for (i = 0; i < TUNNEL_RECORDS_MAX; i++) {
		if (!T->t[i].used) {
			oldest = i;
			break;
		}
		/* Full: forget the longest-disconnected record. */
		if (T->t[i].state == T_DISCONNECTED && T->t[i].slot < 0 && T->t[i].n_start == 0 &&
		    (oldest == TUNNEL_RECORDS_MAX || T->t[i].since < T->t[oldest].since))
			oldest = i;
	}
	if (oldest == TUNNEL_RECORDS_MAX)
		return NULL;
	t = &T->t[oldest];
	memset(t, 0, sizeof(*t));
	t->used = true;
	ne_strscpy(t->config, config, sizeof(t->config));
	t->slot = -1;
	t->state = T_DISCONNECTED;
	t->since = now_ms();
	for (i = 0; i < NE_WIRE_TUNNEL_QUEUES_MAX; i++)
		t->fds[i] = -1;
	return t;
}

static json_t *tunnel_json(struct tunnel *t);

/* event "state" (previous: the state before) or "settings" (applied or cleared). */
static void notify(struct tunnel *t, const char *event, const char *previous)
{
	size_t i;

	for (i = 0; i < TUNNEL_WATCHERS_MAX; i++) {
		struct ctl_req *w = T->watchers[i];

		if (!w)
			continue;
		if (!ctl_req_waiting(w)) {
			ctl_req_unref(w);
			T->watchers[i] = NULL;
			continue;
		}
		ctl_req_event(w, event, json_pack("{s:s, s:s, s:s, s:o}", "configuration", t->config,
						    "state", tstate_names[t->state], "previous", previous,
						    "tunnel", tunnel_json(t)));
	}
}

static void set_state(struct tunnel *t, enum tstate st)
{
	const char *prev = tstate_names[t->state];

	if (t->state == st)
		return;
	t->state = st;
	t->since = now_ms();
	log_info("tunnel %s: %s", t->config, tstate_names[st]);
	notify(t, "state", prev);
}

static void record_error(struct tunnel *t, int error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void record_error(struct tunnel *t, int error, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->last_error, sizeof(t->last_error), fmt, ap);
	va_end(ap);
	t->last_errno = error;
	t->last_error_time = now_ms();
}

/* ---- options ------------------------------------------------------------------------ */

static bool yes(const char *v)
{
	return !strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "on");
}

/* One option; err set for a bad value. */
static void apply_option(struct daemon *d, struct tunnel *t, const char *k, const char *v)
{
	char path[PATH_MAX], *list, *tok, *save = NULL;
	struct stat st;

	if (!strcmp(k, "interface")) {
		if (tunnel_ifname_check(v) < 0)
			snprintf(t->option_error, sizeof(t->option_error),
				 "option interface: '%s' is not a valid interface name (1..15 bytes)", v);
		else
			ne_strscpy(t->ifname_opt, v, sizeof(t->ifname_opt));
	} else if (!strcmp(k, "include_all_networks")) {
		t->force_all = yes(v);
	} else if (!strcmp(k, "privileged_ports")) {
		t->privileged_ports = yes(v);
	} else if (!strcmp(k, "apps")) {
		t->n_apps = 0;
		list = strdup(v);
		if (!list)
			return;
		for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			while (*tok == '/')
				tok++;
			if (!*tok || strstr(tok, "..") || t->n_apps >= TUNNEL_APPS_MAX) {
				snprintf(t->option_error, sizeof(t->option_error),
					 "option apps: '%s' is not a cgroup path (at most %d)", tok, TUNNEL_APPS_MAX);
				break;
			}
			snprintf(path, sizeof(path), "%s/%s", d->cgroup_mount, tok);
			if (!d->cgroup_mount[0] || stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
				snprintf(t->option_error, sizeof(t->option_error),
					 "option apps: cgroup '%s' does not exist below %s", tok,
					 d->cgroup_mount[0] ? d->cgroup_mount : "(no cgroup2 mount)");
				break;
			}
			ne_strscpy(t->apps[t->n_apps++], tok, sizeof(t->apps[0]));
		}
		free(list);
	}
}

static void load_options(struct daemon *d, struct tunnel *t)
{
	struct store_config c = { 0 };
	size_t i;

	t->ifname_opt[0] = '\0';
	t->force_all = false;
	t->privileged_ports = false;
	t->n_apps = 0;
	t->option_error[0] = '\0';
	if (store_config_get(d->store, t->config, &c) == 0) {
		ne_strscpy(t->extension, c.extension, sizeof(t->extension));
		for (i = 0; i < c.n_options; i++)
			apply_option(d, t, c.keys[i], c.values[i]);
		store_config_clear(&c);
	}
	for (i = 0; i < t->n_start; i++)
		apply_option(d, t, t->start_keys[i], t->start_values[i]);
}

static void start_options_clear(struct tunnel *t)
{
	size_t i;

	for (i = 0; i < t->n_start; i++) {
		free(t->start_keys[i]);
		free(t->start_values[i]);
	}
	t->n_start = 0;
}

size_t tunnel_start_options(struct daemon *d, const char *config, const char *const **ret_keys,
			    const char *const **ret_values)
{
	struct tunnel *t = find(config);

	(void)d;
	if (!t || !t->n_start)
		return 0;
	*ret_keys = (const char *const *)t->start_keys;
	*ret_values = (const char *const *)t->start_values;
	return t->n_start;
}

/* ---- the device ----------------------------------------------------------------------- */

/* The device goes away when its last queue fd closes; the extension holds copies, which it
 * closes at STOP_DONE or by dying, but a stuck or hostile one could keep the device (and its
 * name) alive. So the device is deleted first, while netextd's fds still pin its index. */
static void device_close(struct tunnel *t)
{
	unsigned i;
	int r;

	if (t->ifindex && T->rt && (r = dp_route_link_del(T->rt, t->ifindex)) < 0)
		log_warnx("tunnel %s: cannot delete device %s: %s", t->config, t->ifname, strerror(-r));
	for (i = 0; i < NE_WIRE_TUNNEL_QUEUES_MAX; i++)
		ne_closep(&t->fds[i]);
	if (t->ifindex)
		log_info("tunnel %s: device %s removed", t->config, t->ifname);
	t->nq = 0;
	t->ifindex = 0;
	t->offloads = 0;
	t->mtu = 0;
	t->ifname[0] = '\0';
}

static int tun_attach(const char *name, int *ret_fd)
{
	struct ifreq ifr = { 0 };
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return ne_negerrno();
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE | IFF_VNET_HDR;
	ne_strscpy(ifr.ifr_name, name, sizeof(ifr.ifr_name));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int r = ne_negerrno();

		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

/* Offloads: the kernel hands over (and accepts) TCP and UDP GSO batches; a kernel without USO
 * gets TCP segmentation only. */
static int tun_offloads(struct tunnel *t)
{
	int hdr = TUNNEL_VNET_HDR_LEN;
	unsigned full = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6;
	unsigned tcp = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;

	if (ioctl(t->fds[0], TUNSETVNETHDRSZ, &hdr) < 0)
		return ne_negerrno();
	if (ioctl(t->fds[0], TUNSETOFFLOAD, full) == 0) {
		t->offloads = full;
		return 0;
	}
	log_info("tunnel %s: the kernel refuses UDP segmentation offload (%s): TCP offloads only",
		 t->config, strerror(errno));
	if (ioctl(t->fds[0], TUNSETOFFLOAD, tcp) < 0)
		return ne_negerrno();
	t->offloads = tcp;
	return 0;
}

static int device_open(struct tunnel *t, unsigned nq, char *err, size_t errlen)
{
	char name[IFNAMSIZ];
	unsigned i;
	int r;

	if (t->ifname_opt[0])
		ne_strscpy(name, t->ifname_opt, sizeof(name));
	else
		snprintf(name, sizeof(name), TUNNEL_IFNAME_DEFAULT, (unsigned)t->slot);
	/* TUNSETIFF on an existing multi-queue TUN would add a queue to it: refuse first. */
	if (if_nametoindex(name)) {
		snprintf(err, errlen, "interface %s exists already (option interface=NAME picks another)", name);
		return -EEXIST;
	}
	for (i = 0; i < nq; i++) {
		r = tun_attach(name, &t->fds[i]);
		if (r < 0) {
			snprintf(err, errlen, "cannot create TUN device %s (queue %u): %s", name, i, strerror(-r));
			goto fail;
		}
		if (i == 0 && (r = tun_offloads(t)) < 0) {
			snprintf(err, errlen, "cannot set the vnet header and offloads on %s: %s", name, strerror(-r));
			goto fail;
		}
	}
	ne_strscpy(t->ifname, name, sizeof(t->ifname));
	t->ifindex = if_nametoindex(name);
	t->nq = nq;
	if (!t->ifindex) {
		snprintf(err, errlen, "TUN device %s vanished", name);
		r = -ENODEV;
		goto fail;
	}
	/* No link-local address (and so no router solicitations from it): set while down. */
	r = dp_route_link_set(T->rt, t->ifindex, 0, true, false);
	if (r < 0)
		log_info("tunnel %s: cannot turn off IPv6 address generation on %s: %s", t->config, name,
			 strerror(-r));
	log_info("tunnel %s: device %s (index %u, %u queue%s, offloads 0x%x)", t->config, name,
		 t->ifindex, nq, nq == 1 ? "" : "s", t->offloads);
	return 0;
fail:
	device_close(t);
	return r;
}

static int device_send(struct tunnel *t, uint32_t mtu)
{
	struct ne_msg_tunnel_device m = { 0 };
	struct ne_wbuf b = { T->fbuf, 0, sizeof(T->fbuf), 0 };
	int r;

	m.provider = t->handle;
	m.ifname = (struct ne_view){ t->ifname, strlen(t->ifname) };
	m.ifindex = t->ifindex;
	m.mtu = mtu;
	m.vnet_hdr_len = TUNNEL_VNET_HDR_LEN;
	m.offloads = t->offloads;
	m.count = (uint16_t)t->nq;
	r = ne_msg_tunnel_device_encode(&b, &m);
	if (r < 0)
		return r;
	return ext_send_fds(t->ext, T->fbuf, (size_t)r, t->fds, t->nq);
}

/* ---- applying settings ------------------------------------------------------------------- */

static void tunnel_ifindexes(unsigned *out, size_t *n)
{
	size_t i;

	*n = 0;
	for (i = 0; i < TUNNEL_RECORDS_MAX; i++)
		if (T->t[i].used && T->t[i].ifindex)
			out[(*n)++] = T->t[i].ifindex;
}

static void dns_remove(struct tunnel *t)
{
	char source[DNSROUTE_SOURCE_MAX];

	snprintf(source, sizeof(source), "tunnel:%s", t->config);
	if (T->d->dns_routes && dnsroutes_del_source(T->d->dns_routes, source) > 0)
		dnsproxy_reconfigure(T->d);
	t->dns_note[0] = '\0';
}

static void dns_apply(struct tunnel *t)
{
	struct dns_route *routes = calloc(TUNNEL_DNS_ROUTES_MAX, sizeof(*routes));
	size_t n = 0, i, refused = 0;
	char first[300] = "";
	int r;

	dns_remove(t);
	if (!routes || !T->d->dns_routes)
		goto out;
	if (tunnel_dns_routes(t->s, t->config, routes, TUNNEL_DNS_ROUTES_MAX, &n) < 0)
		goto out;
	for (i = 0; i < n; i++) {
		r = dnsroutes_add(T->d->dns_routes, &routes[i]);
		if (r < 0) {
			if (!refused++)
				snprintf(first, sizeof(first), "%s%s%s: %s", routes[i].suffix[0] ? "domain " : "",
					 routes[i].suffix[0] ? routes[i].suffix : "the default DNS route",
					 r == -EEXIST ? " belongs to another source" : "", r == -EEXIST ? "kept" : strerror(-r));
		}
	}
	if (refused) {
		snprintf(t->dns_note, sizeof(t->dns_note), "%zu of %zu DNS routes not added (%s)", refused, n, first);
		log_warnx("tunnel %s: %s", t->config, t->dns_note);
	}
	if (n)
		dnsproxy_reconfigure(T->d);
out:
	free(routes);
}

/* Removes what the settings installed (not the device). */
static void settings_remove(struct tunnel *t)
{
	size_t i;

	if (t->slot >= 0 && T->rt)
		dp_route_flush_table(T->rt, TUNNEL_TABLE_BASE + (unsigned)t->slot);
	for (i = 0; T->rt && t->s && t->ifindex && i < t->s->n_addr; i++)
		dp_route_addr(T->rt, false, t->ifindex, &t->s->addr[i]);
	dns_remove(t);
	free(t->s);
	t->s = NULL;
	t->per_app = false;
}

static bool addr_in(const struct tunnel_settings *s, const struct dp_prefix *p)
{
	size_t i;

	for (i = 0; s && i < s->n_addr; i++)
		if (!memcmp(&s->addr[i], p, sizeof(*p)))
			return true;
	return false;
}

static int read_connected(void)
{
	unsigned skip[TUNNEL_RECORDS_MAX];
	size_t n;

	tunnel_ifindexes(skip, &n);
	return dp_route_connected(T->rt, skip, n, T->connected, TUNNEL_CONNECTED_MAX, &T->n_connected);
}

/* Installs ns (addresses, routes, rules) over what t has; t->s becomes ns. */
static int settings_install(struct tunnel *t, struct tunnel_settings *ns, char *err, size_t errlen)
{
	uint32_t table = TUNNEL_TABLE_BASE + (unsigned)t->slot;
	struct tunnel_plan *p = &T->plan;
	size_t i;
	int r;

	r = dp_route_link_set(T->rt, t->ifindex, ns->mtu, false, true);
	if (r < 0) {
		snprintf(err, errlen, "mtu: cannot set %u on %s: %s", ns->mtu, t->ifname, strerror(-r));
		return r;
	}
	for (i = 0; t->s && i < t->s->n_addr; i++)
		if (!addr_in(ns, &t->s->addr[i]))
			dp_route_addr(T->rt, false, t->ifindex, &t->s->addr[i]);
	/* The link is up first: a down link drops IPv6 addresses. */
	for (i = 0; i < ns->n_addr; i++) {
		r = dp_route_addr(T->rt, true, t->ifindex, &ns->addr[i]);
		if (r < 0) {
			char a[64];

			snprintf(err, errlen, "addresses[%zu]: cannot add %s: %s", i,
				 dp_prefix_format(&ns->addr[i], a, sizeof(a)), strerror(-r));
			goto fail;
		}
	}
	T->n_connected = 0;
	if (((ns->flags & NE_TUNNEL_F_EXCLUDE_LOCAL) || !(ns->flags & NE_TUNNEL_F_ENFORCE_ROUTES)) &&
	    read_connected() < 0)
		log_warnx("tunnel %s: cannot read the connected networks", t->config);
	r = tunnel_plan_build(ns, (unsigned)t->slot, t->n_apps > 0, T->connected, T->n_connected, p);
	if (r < 0) {
		snprintf(err, errlen, "included_routes: too many routes");
		goto fail;
	}
	/* Rules stay while the table is refilled: with the kill switch nothing leaks meanwhile
	 * (its nftables rules are replaced atomically afterwards). */
	dp_route_flush_routes(T->rt, table);
	for (i = 0; i < p->n_routes; i++) {
		r = dp_route_prefix(T->rt, true, table, &p->routes[i].prefix, p->routes[i].via_dev ? t->ifindex : 0);
		if (r < 0) {
			char a[64];

			snprintf(err, errlen, "%s route %s: %s", p->routes[i].via_dev ? "included" : "excluded",
				 dp_prefix_format(&p->routes[i].prefix, a, sizeof(a)), strerror(-r));
			goto fail;
		}
	}
	/* The other mode's rules go (per-app ↔ whole host); the plan's are added (idempotent). */
	for (i = 0; i < 2; i++) {
		int fam = i ? AF_INET6 : AF_INET;
		struct dp_rule_spec app = { TUNNEL_APP_MARK(t->slot), TUNNEL_APP_MASK, false, -1, table,
					    TUNNEL_PRIO_APP + (unsigned)t->slot };
		struct dp_rule_spec spec = { TUNNEL_MARK_BYPASS, TUNNEL_MARK_BYPASS, true, 0, table,
					     TUNNEL_PRIO_SPECIFIC + (unsigned)t->slot };
		struct dp_rule_spec def = spec;

		def.suppress = -1;
		def.priority = TUNNEL_PRIO_DEFAULT + (unsigned)t->slot;
		if (t->n_apps) {
			dp_route_rule(T->rt, false, fam, &spec);
			dp_route_rule(T->rt, false, fam, &def);
		} else {
			dp_route_rule(T->rt, false, fam, &app);
		}
	}
	for (i = 0; i < p->n_rules; i++) {
		r = dp_route_rule(T->rt, true, p->rules[i].family, &p->rules[i].spec);
		if (r < 0) {
			snprintf(err, errlen, "cannot add the policy-routing rule at priority %u: %s",
				 p->rules[i].spec.priority, strerror(-r));
			goto fail;
		}
	}
	free(t->s);
	t->s = ns;
	t->per_app = t->n_apps > 0;
	t->mtu = ns->mtu;
	return 0;
fail:
	settings_remove(t);
	for (i = 0; i < ns->n_addr; i++)
		dp_route_addr(T->rt, false, t->ifindex, &ns->addr[i]);
	free(ns);
	return r;
}

static void settings_result(struct tunnel *t, uint64_t id, int error, const char *msg)
{
	struct ne_msg_result m = { .error = error, .message = { msg, strlen(msg) } };
	struct ne_wbuf b = { T->fbuf, 0, sizeof(T->fbuf), 0 };
	int r = ne_msg_result2_encode(&b, NE_MSG_RESULT, id, &m);

	if (r >= 0 && t->ext)
		(void)ext_send_raw(t->ext, T->fbuf, (size_t)r, true);
	if (error)
		log_warnx("tunnel %s: settings refused: %s", t->config, msg);
}

static bool provider_active(const struct tunnel *t)
{
	return t->state == T_CONNECTING || t->state == T_CONNECTED || t->state == T_REASSERTING;
}

/* Checks, makes the device when needed, installs. 0 or a negative errno with err. */
static int settings_apply(struct tunnel *t, struct tunnel_settings *ns, bool *ret_device_sent, char *err, size_t errlen)
{
	unsigned nq = ns->queues ? ns->queues : 1;
	int r;

	if (t->option_error[0] || !T->rt) {
		snprintf(err, errlen, "%s", T->rt ? t->option_error : "this netextd runs without a datapath");
		free(ns);
		return T->rt ? -EINVAL : -EOPNOTSUPP;
	}
	if (t->ifindex && ns->queues && ns->queues != t->nq) {
		snprintf(err, errlen, "queues: the device has %u, settings ask for %u (fixed by the first settings)",
			 t->nq, ns->queues);
		free(ns);
		return -EINVAL;
	}
	if (!t->ifindex) {
		r = device_open(t, nq, err, errlen);
		if (r < 0) {
			free(ns);
			return r;
		}
		/* The extension gets the queues before the RESULT of these settings. */
		r = device_send(t, ns->mtu);
		if (r < 0) {
			snprintf(err, errlen, "cannot pass the TUN queues: %s", strerror(-r));
			free(ns);
			return r;
		}
		*ret_device_sent = true;
	}
	return settings_install(t, ns, err, errlen);
}

int tunnel_on_settings(struct daemon *d, const char *config, uint64_t id, const uint8_t *p, size_t len)
{
	struct tunnel *t = find(config);
	struct tunnel_settings *ns;
	char err[512] = "";
	bool sent = false;
	int r;

	if (!T || ne_msg_tunnel_settings_decode(p, len, &T->msg) < 0)
		return -EBADMSG;
	if (!t || !t->ext || t->handle != T->msg.provider)
		return -EPROTO;
	if (!provider_active(t)) {
		settings_result(t, id, -ENOTCONN, "the tunnel is stopping");
		return 0;
	}
	if (t->slot < 0) {
		settings_result(t, id, -ENOSPC, "no free tunnel slot (at most 15 tunnels at once)");
		return 0;
	}
	ns = malloc(sizeof(*ns));
	if (!ns) {
		settings_result(t, id, -ENOMEM, "out of memory");
		return 0;
	}
	r = tunnel_settings_parse(&T->msg, ns, err, sizeof(err));
	if (r < 0) {
		free(ns);
		settings_result(t, id, r, err);
		return 0;
	}
	if (ns->flags & NE_TUNNEL_F_CLEAR) {
		free(ns);
		t->ks_held = false; /* the restarted provider decided */
		settings_remove(t);
		daemon_apply_ruleset(d);
		log_info("tunnel %s: settings cleared", t->config);
		settings_result(t, id, 0, "");
		notify(t, "settings", tstate_names[t->state]);
		return 0;
	}
	r = settings_apply(t, ns, &sent, err, sizeof(err));
	if (r < 0) {
		daemon_apply_ruleset(d);
		settings_result(t, id, r, err);
		return 0;
	}
	t->ks_held = false; /* the new settings decide, in the same transaction */
	dns_apply(t);
	r = daemon_apply_ruleset(d);
	if (r < 0) {
		snprintf(err, sizeof(err), "cannot apply the kill switch / per-app rules: %s", strerror(-r));
		settings_remove(t);
		daemon_apply_ruleset(d);
		settings_result(t, id, r, err);
		return 0;
	}
	log_info("tunnel %s: settings applied on %s (%zu addresses, %zu routes%s%s)", t->config, t->ifname,
		 t->s->n_addr, T->plan.n_routes, (t->s->flags & NE_TUNNEL_F_INCLUDE_ALL) || t->force_all ?
		 ", kill switch" : "", t->per_app ? ", per-app" : "");
	settings_result(t, id, 0, t->dns_note);
	notify(t, "settings", tstate_names[t->state]);
	return 0;
}

/* ---- nftables: kill switch and per-app marks ---------------------------------------------- */

static bool kill_switch(const struct tunnel *t)
{
	return t->s && ((t->s->flags & NE_TUNNEL_F_INCLUDE_ALL) || t->force_all);
}

/* The kill switch is in the table: the settings' or one held across a crash. */
static bool ks_on(const struct tunnel *t)
{
	return t->used && (kill_switch(t) || t->ks_held);
}

static bool ks_local(const struct tunnel *t)
{
	return t->s ? (t->s->flags & NE_TUNNEL_F_EXCLUDE_LOCAL) != 0 : t->ks_held_local;
}

static int add_rule(struct dp_ruleset *rs, size_t chain, const struct dp_match *m, size_t nm,
		    enum dp_action_kind verdict)
{
	struct dp_action a[2] = { { .kind = DP_ACTION_COUNTER }, { .kind = verdict } };

	return dp_ruleset_add(rs, chain, m, nm, verdict == DP_ACTION_DROP ? a : a + 1, verdict == DP_ACTION_DROP ? 2 : 1);
}

static int ifname_match(struct dp_match *m, const char *name)
{
	memset(m, 0, sizeof(*m));
	m->kind = DP_MATCH_OIFNAME;
	ne_strscpy(m->ifname, name, sizeof(m->ifname));
	return 0;
}

static int prefix_match(struct dp_match *m, const struct dp_prefix *p)
{
	memset(m, 0, sizeof(*m));
	m->kind = DP_MATCH_DADDR;
	m->addr.family = p->family;
	memcpy(p->family == AF_INET ? (void *)&m->addr.v4 : (void *)&m->addr.v6, p->addr,
	       p->family == AF_INET ? 4 : 16);
	m->addr.prefix = p->len;
	return 0;
}

/* Accepts: loopback, every tunnel device, marked transport, DNS queries diverted to netextd,
 * the tunnel extensions' cgroups, DHCP, DHCPv6, neighbour discovery, and
 * (exclude_local_networks) local networks. */
static int ks_chain(struct daemon *d, struct dp_ruleset *rs, size_t c, bool output, bool local)
{
	static const uint16_t dhcp[] = { 67, 68, 546, 547 };
	static const char *const lln[] = { "169.254.0.0/16", "fe80::/10", "224.0.0.0/24", "ff02::/16" };
	struct dp_match m[2];
	struct dp_prefix p;
	char cg[PATH_MAX];
	size_t i;
	int r = 0;

	ifname_match(&m[0], "lo");
	if (output)
		r = add_rule(rs, c, m, 1, DP_ACTION_ACCEPT);
	for (i = 0; i < TUNNEL_RECORDS_MAX && r == 0; i++)
		if (T->t[i].used && T->t[i].ifindex && ifname_match(&m[0], T->t[i].ifname) == 0)
			r = add_rule(rs, c, m, 1, DP_ACTION_ACCEPT);
	if (output && r == 0) {
		m[0] = (struct dp_match){ .kind = DP_MATCH_META_MARK, .mark = { TUNNEL_MARK_BYPASS, TUNNEL_MARK_BYPASS } };
		r = add_rule(rs, c, m, 1, DP_ACTION_ACCEPT);
	}
	/* DNS queries netextd intercepts: the route chain rerouted them to lo (table 7153), but
	 * a filter chain of the same hook still sees the first route's oif, so `oif lo` misses
	 * them. netextd's own upstream query then goes through the tunnel or is dropped here. */
	if (output && r == 0) {
		m[0] = (struct dp_match){ .kind = DP_MATCH_META_MARK, .mark = { DNS_MARK_DIVERT, DNS_MARK_DIVERT } };
		r = add_rule(rs, c, m, 1, DP_ACTION_ACCEPT);
	}
	/* Every packet-tunnel extension's own sockets (its name lookups, say; the transport
	 * sockets carry the bypass mark anyway), also one restarting under a held switch. */
	for (i = 0; output && i < TUNNEL_RECORDS_MAX && r == 0 && d->cgroup_mount[0]; i++) {
		if (!T->t[i].used || !(T->t[i].ext || T->t[i].ks_held) || !T->t[i].extension[0])
			continue;
		snprintf(cg, sizeof(cg), "%s/ext-%s", d->cgroup_base, T->t[i].extension);
		if (cgroup_match(d->cgroup_mount, cg, &m[0]) == 0)
			r = add_rule(rs, c, m, 1, DP_ACTION_ACCEPT);
	}
	for (i = 0; i < NE_ARRAY_SIZE(dhcp) && r == 0; i++) {
		m[0] = (struct dp_match){ .kind = DP_MATCH_L4PROTO, .l4proto = IPPROTO_UDP };
		m[1] = (struct dp_match){ .kind = DP_MATCH_DPORT, .port = dhcp[i] };
		r = add_rule(rs, c, m, 2, DP_ACTION_ACCEPT);
	}
	for (i = 133; i <= 136 && r == 0; i++) {
		m[0] = (struct dp_match){ .kind = DP_MATCH_ICMPV6_TYPE, .icmp_type = (uint8_t)i };
		r = add_rule(rs, c, m, 1, DP_ACTION_ACCEPT);
	}
	if (local) {
		for (i = 0; i < NE_ARRAY_SIZE(lln) && r == 0; i++)
			if (dp_prefix_parse(lln[i], false, &p) == 0 && prefix_match(&m[0], &p) == 0)
				r = add_rule(rs, c, m, 1, DP_ACTION_ACCEPT);
		if (read_connected() == 0)
			for (i = 0; i < T->n_connected && r == 0; i++)
				if (prefix_match(&m[0], &T->connected[i]) == 0)
					r = add_rule(rs, c, m, 1, DP_ACTION_ACCEPT);
	}
	if (r == 0)
		r = add_rule(rs, c, NULL, 0, DP_ACTION_DROP);
	return r;
}

static int app_rules(struct daemon *d, struct dp_ruleset *rs)
{
	struct dp_action mark = { .kind = DP_ACTION_META_MARK_SET };
	struct dp_action masq = { .kind = DP_ACTION_MASQUERADE };
	struct dp_match m[2];
	size_t route = 0, nat = 0, i, k;
	bool any = false;
	int r = 0;

	for (i = 0; i < TUNNEL_RECORDS_MAX; i++)
		any |= T->t[i].used && T->t[i].s && T->t[i].per_app;
	if (!any)
		return 0;
	if ((r = dp_ruleset_add_chain(rs, "tunnel_app", DP_CHAIN_ROUTE, DP_HOOK_OUTPUT, DP_PRIO_MANGLE + 1, &route)) < 0 ||
	    (r = dp_ruleset_add_chain(rs, "tunnel_nat", DP_CHAIN_NAT, DP_HOOK_POSTROUTING, DP_PRIO_SRCNAT, &nat)) < 0)
		return r;
	for (i = 0; i < TUNNEL_RECORDS_MAX && r == 0; i++) {
		struct tunnel *t = &T->t[i];

		if (!t->used || !t->s || !t->per_app)
			continue;
		mark.mark = TUNNEL_APP_MARK(t->slot);
		mark.mark_keep = ~TUNNEL_APP_MASK;
		for (k = 0; k < t->n_apps && r == 0; k++) {
			if (cgroup_match(d->cgroup_mount, t->apps[k], &m[0]) < 0) {
				log_warnx("tunnel %s: cgroup %s is gone; its apps are not routed", t->config, t->apps[k]);
				continue;
			}
			m[1] = (struct dp_match){ .kind = DP_MATCH_META_MARK, .neg = true,
						  .mark = { TUNNEL_MARK_BYPASS, TUNNEL_MARK_BYPASS } };
			r = dp_ruleset_add(rs, route, m, 2, &mark, 1);
		}
		/* The source address was chosen by the main table before the mark rerouted the
		 * packet: rewrite it to the tunnel's. */
		if (r == 0 && ifname_match(&m[0], t->ifname) == 0) {
			m[1] = (struct dp_match){ .kind = DP_MATCH_META_MARK,
						  .mark = { TUNNEL_APP_MASK, TUNNEL_APP_MARK(t->slot) } };
			r = dp_ruleset_add(rs, nat, m, 2, &masq, 1);
		}
	}
	return r;
}

int tunnel_add_rules(struct daemon *d, struct dp_ruleset *rs)
{
	bool any = false, local = false;
	size_t i, out, fwd;
	int r;

	if (!T)
		return 0;
	for (i = 0; i < TUNNEL_RECORDS_MAX; i++)
		if (ks_on(&T->t[i])) {
			any = true;
			local |= ks_local(&T->t[i]);
		}
	if (any) {
		if ((r = dp_ruleset_add_chain(rs, "tunnel_ks_out", DP_CHAIN_FILTER, DP_HOOK_OUTPUT, DP_PRIO_FILTER, &out)) < 0 ||
		    (r = ks_chain(d, rs, out, true, local)) < 0 ||
		    (r = dp_ruleset_add_chain(rs, "tunnel_ks_fwd", DP_CHAIN_FILTER, DP_HOOK_FORWARD, DP_PRIO_FILTER, &fwd)) < 0 ||
		    (r = ks_chain(d, rs, fwd, false, local)) < 0)
			return r;
	}
	return app_rules(d, rs);
}

/* ---- transport sockets ------------------------------------------------------------------- */

static void socket_result(struct tunnel *t, uint64_t id, int error, const char *msg, int fd)
{
	struct ne_msg_result m = { .error = error, .message = { msg, strlen(msg) } };
	struct ne_wbuf b = { T->fbuf, 0, sizeof(T->fbuf), 0 };
	int r = ne_msg_result2_encode(&b, NE_MSG_TUNNEL_SOCKET_FD, id, &m);

	if (r < 0 || !t->ext)
		return;
	if (fd >= 0)
		(void)ext_send_fds(t->ext, T->fbuf, (size_t)r, &fd, 1);
	else
		(void)ext_send_raw(t->ext, T->fbuf, (size_t)r, true);
}

static int make_socket(const struct ne_msg_tunnel_socket *m, int *ret_fd, char *err, size_t errlen)
{
	int family = m->family == 4 ? AF_INET : AF_INET6;
	int type = m->protocol == IPPROTO_TCP ? SOCK_STREAM : SOCK_DGRAM;
	uint32_t mark = TUNNEL_MARK_BYPASS | DNS_MARK_EXEMPT;
	int buf = TUNNEL_SOCKBUF, off = 0, on = 1;
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	int fd;

	if ((m->family != 0 && m->family != 4 && m->family != 6) ||
	    (m->protocol != IPPROTO_TCP && m->protocol != IPPROTO_UDP)) {
		snprintf(err, errlen, "family %u / protocol %u: only 4, 6 or 0 and UDP or TCP", m->family, m->protocol);
		return -EINVAL;
	}
	fd = socket(family, type | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return ne_negerrno();
	}
	if ((m->family == 0 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) < 0) ||
	    setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0) {
		snprintf(err, errlen, "cannot mark the socket: %s", strerror(errno));
		goto fail;
	}
	/* Throughput: a WireGuard-style transport drops datagrams with the default buffers. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof(buf)) < 0)
		log_debug("tunnel: cannot grow a transport socket's buffers: %s", strerror(errno));
	if (m->port) {
		if (type == SOCK_STREAM)
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if (family == AF_INET) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

			s4->sin_family = AF_INET;
			s4->sin_port = htons(m->port);
			sl = sizeof(*s4);
		} else {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons(m->port);
			sl = sizeof(*s6);
		}
		if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
			snprintf(err, errlen, "bind to port %u: %s", m->port, strerror(errno));
			goto fail;
		}
	}
	*ret_fd = fd;
	return 0;
fail:
	{
		int r = ne_negerrno();

		close(fd);
		return r;
	}
}

int tunnel_on_socket(struct daemon *d, const char *config, uint64_t id, const uint8_t *p, size_t len)
{
	struct ne_msg_tunnel_socket m;
	struct tunnel *t = find(config);
	char err[256] = "";
	int fd = -1, r;

	(void)d;
	if (ne_msg_tunnel_socket_decode(p, len, &m) < 0)
		return -EBADMSG;
	if (!t || !t->ext)
		return -EPROTO;
	if (!provider_active(t)) {
		socket_result(t, id, -ENOTCONN, "the tunnel is stopping", -1);
		return 0;
	}
	/* netextd binds as root: without the administrator's say-so an extension could take a
	 * privileged port (53, 443, …) that some service of the host is about to use. */
	if (m.port && m.port < 1024 && !t->privileged_ports) {
		snprintf(err, sizeof(err), "port %u is below 1024: the configuration needs the option "
			 "privileged_ports=yes", m.port);
		log_info("tunnel %s: transport socket refused: %s", t->config, err);
		socket_result(t, id, -EACCES, err, -1);
		return 0;
	}
	r = make_socket(&m, &fd, err, sizeof(err));
	if (r < 0) {
		log_info("tunnel %s: transport socket refused: %s", t->config, err);
		socket_result(t, id, r, err, -1);
		return 0;
	}
	socket_result(t, id, 0, "", fd);
	close(fd);
	return 0;
}

/* ---- state and cancel ----------------------------------------------------------------- */

int tunnel_on_state(struct daemon *d, const char *config, const uint8_t *p, size_t len)
{
	struct ne_msg_tunnel_state m;
	struct tunnel *t = find(config);

	(void)d;
	if (ne_msg_tunnel_state_decode(p, len, &m) < 0)
		return -EBADMSG;
	if (!t)
		return -EPROTO;
	if (t->state == T_CONNECTED && m.reasserting)
		set_state(t, T_REASSERTING);
	else if (t->state == T_REASSERTING && !m.reasserting)
		set_state(t, T_CONNECTED);
	return 0;
}

int tunnel_on_cancel(struct daemon *d, const char *config, const uint8_t *p, size_t len)
{
	struct ne_msg_tunnel_cancel m;
	struct tunnel *t = find(config);
	int error;

	if (ne_msg_tunnel_cancel_decode(p, len, &m) < 0)
		return -EBADMSG;
	if (!t)
		return -EPROTO;
	error = m.error < 0 && m.error > -4096 ? m.error : -ECONNABORTED;
	record_error(t, error, "cancelled by the provider: %s%s%.*s", strerror(-error), m.message.len ? ": " : "",
		     (int)m.message.len, m.message.p);
	log_warnx("tunnel %s: %s", t->config, t->last_error);
	settings_remove(t);
	daemon_apply_ruleset(d);
	ext_config_stop_reason(d, t->config, NE_STOP_REASON_PROVIDER_FAILED);
	return 0;
}

/* ---- provider lifecycle ---------------------------------------------------------------- */

static void teardown(struct daemon *d, struct tunnel *t)
{
	bool had = t->s || t->ifindex;

	settings_remove(t);
	device_close(t);
	if (t->slot >= 0) {
		if (T->rt)
			dp_route_flush_table(T->rt, TUNNEL_TABLE_BASE + (unsigned)t->slot);
		T->slot_used[t->slot] = false;
		t->slot = -1;
	}
	t->ext = NULL;
	t->handle = 0;
	if (had)
		daemon_apply_ruleset(d);
}

void tunnel_provider_present(struct daemon *d, const char *config, struct ext *e, uint32_t handle)
{
	struct tunnel *t = find_or_add(config);
	int slot;

	if (!t) {
		log_warnx("tunnel %s: too many tunnel records", config);
		return;
	}
	if (t->ext)
		teardown(d, t); /* whatever the previous instance left */
	t->ext = e;
	t->handle = handle;
	ne_strscpy(t->extension, ext_identifier(e), sizeof(t->extension));
	load_options(d, t);
	slot = tunnel_slot_alloc(T->slot_used);
	if (slot < 0) {
		log_warnx("tunnel %s: no free slot (at most %d tunnels)", config, TUNNEL_MAX);
	} else {
		t->slot = slot;
		T->slot_used[slot] = true;
		/* A killed netextd or instance may have left routes or rules in this table. */
		if (T->rt)
			dp_route_flush_table(T->rt, TUNNEL_TABLE_BASE + (unsigned)slot);
	}
	set_state(t, T_CONNECTING);
	/* A kill switch is on: let this extension's cgroup through it. After a crash its
	 * cgroup is a new one, and the restarted provider may need the network (a host-name
	 * endpoint) before its settings replace the held switch. */
	for (size_t i = 0; i < TUNNEL_RECORDS_MAX; i++)
		if (ks_on(&T->t[i])) {
			daemon_apply_ruleset(d);
			break;
		}
}

void tunnel_provider_running(struct daemon *d, const char *config)
{
	struct tunnel *t = find(config);

	(void)d;
	if (t && t->state == T_CONNECTING)
		set_state(t, T_CONNECTED);
}

void tunnel_provider_stopping(struct daemon *d, const char *config, const char *why)
{
	struct tunnel *t = find(config);

	(void)d;
	if (t && provider_active(t)) {
		log_debug("tunnel %s: stopping (%s)", config, why);
		set_state(t, T_DISCONNECTING);
	}
}

void tunnel_provider_gone(struct daemon *d, const char *config, const char *why)
{
	struct tunnel *t = find(config);
	bool crashed;

	if (!t || (!t->ext && t->state == T_DISCONNECTED))
		return;
	log_info("tunnel %s: provider gone (%s): removing device, routes, rules, DNS", config, why);
	/* A provider that went away without being asked to: the extension died. */
	crashed = strcmp(why, "provider stopped") && t->state != T_DISCONNECTING;
	if (crashed)
		record_error(t, -ECONNRESET, "%s", why);
	/* Its kill switch must not open while the supervisor brings it back: everything but the
	 * tunnel's own exceptions stays blocked (tunnel_reconfigure() lets go if no restart
	 * comes). */
	t->ks_held = crashed && kill_switch(t);
	if (t->ks_held) {
		t->ks_held_local = ks_local(t);
		log_warnx("tunnel %s: the kill switch stays on until the extension is back or the tunnel "
			  "is stopped", config);
	}
	teardown(d, t);
	set_state(t, T_DISCONNECTED);
}

void tunnel_reconfigure(struct daemon *d)
{
	bool changed = false;

	for (size_t i = 0; T && i < TUNNEL_RECORDS_MAX; i++) {
		struct tunnel *t = &T->t[i];
		struct store_config sc;
		struct ext *e;
		bool enabled = false;

		if (!t->used || !t->ks_held || t->ext)
			continue;
		if (store_config_get(d->store, t->config, &sc) == 0) {
			enabled = sc.enabled;
			store_config_clear(&sc);
		}
		e = ext_find(d, t->extension);
		if (enabled && e && ext_restart_pending(e))
			continue;
		log_info("tunnel %s: no restart will come (%s): the kill switch goes", t->config,
			 !enabled ? "configuration stopped" : !e ? "extension removed" : "extension given up on");
		t->ks_held = false;
		changed = true;
	}
	if (changed)
		daemon_apply_ruleset(d);
}

void tunnel_provider_failed(struct daemon *d, const char *config, int error, const char *message)
{
	struct tunnel *t = find(config);

	(void)d;
	if (t)
		/* The error's name is in the record already: the message says what failed. */
		record_error(t, error, "start failed: %s", message[0] ? message : strerror(-error));
}

/* ---- status and control ------------------------------------------------------------------ */

static json_t *prefixes_json(const struct dp_prefix *p, size_t n)
{
	json_t *a = json_array();
	char buf[64];
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(a, json_string(dp_prefix_format(&p[i], buf, sizeof(buf))));
	return a;
}

static json_t *strings_json(const char (*s)[TUNNEL_DOMAIN_MAX], size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(a, json_string(s[i]));
	return a;
}

static json_t *settings_json(const struct tunnel *t)
{
	const struct tunnel_settings *s = t->s;
	char buf[80];
	json_t *dns;
	size_t i;

	if (!s)
		return json_null();
	dns = json_array();
	for (i = 0; i < s->n_dns; i++)
		json_array_append_new(dns, json_string(dnsroutes_format_server(&s->dns[i], buf, sizeof(buf))));
	return json_pack("{s:s, s:I, s:o, s:o, s:o, s:{s:o, s:o, s:o, s:s}, s:b, s:b, s:b}",
			 "remote_address", s->remote, "mtu", (json_int_t)s->mtu,
			 "addresses", prefixes_json(s->addr, s->n_addr),
			 "included_routes", prefixes_json(s->incl, s->n_incl),
			 "excluded_routes", prefixes_json(s->excl, s->n_excl),
			 "dns", "servers", dns, "search_domains", strings_json(s->search, s->n_search),
			 "match_domains", strings_json(s->match, s->n_match), "note", t->dns_note,
			 "include_all_networks", (s->flags & NE_TUNNEL_F_INCLUDE_ALL) != 0,
			 "exclude_local_networks", (s->flags & NE_TUNNEL_F_EXCLUDE_LOCAL) != 0,
			 "enforce_routes", (s->flags & NE_TUNNEL_F_ENFORCE_ROUTES) != 0);
}

static json_t *tunnel_json(struct tunnel *t)
{
	struct dp_link_stats st = { 0 };
	json_t *apps = json_array(), *o;
	size_t i;

	for (i = 0; i < t->n_apps; i++)
		json_array_append_new(apps, json_string(t->apps[i]));
	if (t->ifindex && T->rt)
		dp_route_link_stats(T->rt, t->ifindex, &st);
	o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:b, s:b, s:o, s:o}",
		      "name", t->config, "configuration", t->config, "extension", t->extension, "state", tstate_names[t->state],
		      "since_ms", (json_int_t)t->since, "interface", t->ifname,
		      "offloads", t->offloads & TUN_F_USO4 ? "csum,tso4,tso6,uso4,uso6" :
				  t->offloads ? "csum,tso4,tso6" : "",
		      "ifindex", (json_int_t)t->ifindex, "queues", (json_int_t)t->nq,
		      "mtu", (json_int_t)t->mtu, "slot", (json_int_t)t->slot,
		      "kill_switch", ks_on(t), "per_app", t->per_app, "apps", apps,
		      "settings", settings_json(t));
	json_object_set_new(o, "kill_switch_held", json_boolean(t->ks_held));
	if (t->slot >= 0)
		json_object_set_new(o, "routing", json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}",
			"table", (json_int_t)(TUNNEL_TABLE_BASE + (unsigned)t->slot),
			"bypass_mark", (json_int_t)TUNNEL_MARK_BYPASS,
			"app_mark", (json_int_t)TUNNEL_APP_MARK(t->slot),
			"priority_app", (json_int_t)(TUNNEL_PRIO_APP + (unsigned)t->slot),
			"priority_specific", (json_int_t)(TUNNEL_PRIO_SPECIFIC + (unsigned)t->slot),
			"priority_default", (json_int_t)(TUNNEL_PRIO_DEFAULT + (unsigned)t->slot)));
	json_object_set_new(o, "stats", json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}",
		"rx_bytes", (json_int_t)st.rx_bytes, "rx_packets", (json_int_t)st.rx_packets,
		"tx_bytes", (json_int_t)st.tx_bytes, "tx_packets", (json_int_t)st.tx_packets,
		"rx_dropped", (json_int_t)st.rx_dropped, "tx_dropped", (json_int_t)st.tx_dropped));
	if (ks_on(t) && T->d->nft) {
		uint64_t pk = 0, by = 0, fp = 0, fb = 0;

		/* Counted since the chains' rules last changed. */
		if (dp_nft_chain_counters(T->d->nft, DP_NFT_TABLE_DEFAULT, "tunnel_ks_out", &pk, &by) == 0 &&
		    dp_nft_chain_counters(T->d->nft, DP_NFT_TABLE_DEFAULT, "tunnel_ks_fwd", &fp, &fb) == 0)
			json_object_set_new(o, "kill_switch_drops", json_pack("{s:I, s:I}", "packets",
					    (json_int_t)(pk + fp), "bytes", (json_int_t)(by + fb)));
	}
	if (t->last_errno)
		json_object_set_new(o, "last_error", json_pack("{s:i, s:s, s:s, s:I}", "errno", -t->last_errno,
			"error", strerror(-t->last_errno), "message", t->last_error, "time_ms",
			(json_int_t)t->last_error_time));
	else
		json_object_set_new(o, "last_error", json_null());
	return o;
}

struct status_walk {
	json_t *a;
	const char *name;
};

static int status_cb(const struct store_config *c, void *ud)
{
	struct status_walk *w = ud;
	struct tunnel *t;

	if (c->provider_type != NE_PROVIDER_PACKET_TUNNEL || (w->name && strcmp(w->name, c->name)))
		return 0;
	t = find(c->name);
	if (t) {
		ne_strscpy(t->extension, c->extension, sizeof(t->extension));
		json_array_append_new(w->a, tunnel_json(t));
	} else {
		json_array_append_new(w->a, json_pack("{s:s, s:s, s:s, s:s, s:o}", "name", c->name,
						      "configuration", c->name,
						      "extension", c->extension, "state",
						      tstate_names[T_DISCONNECTED], "last_error", json_null()));
	}
	return 0;
}

static const char *param_name(struct ctl_req *req, json_t *params)
{
	json_t *n = json_object_get(params, "name");

	if (!json_is_string(n) || !json_string_length(n) || json_string_length(n) > NE_WIRE_NAME_MAX) {
		ctl_req_error(req, "invalid-params", "missing or bad string parameter 'name'");
		return NULL;
	}
	return json_string_value(n);
}

/* The configuration must exist and be a packet tunnel. */
static int check_config(struct daemon *d, struct ctl_req *req, const char *name)
{
	struct store_config c = { 0 };
	int type;

	if (store_config_get(d->store, name, &c) < 0) {
		ctl_req_error(req, "not-found", "no configuration named %s", name);
		return -ENOENT;
	}
	type = c.provider_type;
	store_config_clear(&c);
	if (type != NE_PROVIDER_PACKET_TUNNEL) {
		ctl_req_error(req, "invalid-params", "configuration %s is a %s, not a packet-tunnel", name,
			      ne_provider_type_name(type));
		return -EINVAL;
	}
	return 0;
}

void tunnel_ctl_start(struct daemon *d, struct ctl_req *req, void *params)
{
	json_t *opts = json_object_get(params, "options"), *v;
	const char *name = param_name(req, params), *k;
	struct tunnel *t;

	if (!name || check_config(d, req, name) < 0)
		return;
	if (opts && (!json_is_object(opts) || json_object_size(opts) > NE_WIRE_OPTIONS_MAX / 2)) {
		ctl_req_error(req, "invalid-params", "'options' must be an object of at most %d strings",
			      NE_WIRE_OPTIONS_MAX / 2);
		return;
	}
	json_object_foreach(opts, k, v)
		if (!json_is_string(v) || strlen(k) > 128 || json_string_length(v) > 1024) {
			ctl_req_error(req, "invalid-params", "option '%s' must be a string", k);
			return;
		}
	t = find_or_add(name);
	if (!t) {
		ctl_req_error(req, "busy", "too many tunnels");
		return;
	}
	if (t->ext) {
		ctl_req_error(req, "exists", "tunnel %s is already started (%s)", name, tstate_names[t->state]);
		return;
	}
	start_options_clear(t);
	json_object_foreach(opts, k, v) {
		t->start_keys[t->n_start] = strdup(k);
		t->start_values[t->n_start] = strdup(json_string_value(v));
		if (!t->start_keys[t->n_start] || !t->start_values[t->n_start]) {
			free(t->start_keys[t->n_start]);
			free(t->start_values[t->n_start]);
			break;
		}
		t->n_start++;
	}
	/* Check the options now, so a bad one fails the request rather than the first settings. */
	load_options(d, t);
	if (t->option_error[0]) {
		ctl_req_error(req, "invalid-params", "%s", t->option_error);
		start_options_clear(t);
		return;
	}
	t->last_errno = 0;
	t->last_error[0] = '\0';
	ext_config_start(d, name, req);
}

void tunnel_ctl_stop(struct daemon *d, struct ctl_req *req, void *params)
{
	const char *name = param_name(req, params);
	struct tunnel *t;

	if (!name || check_config(d, req, name) < 0)
		return;
	t = find(name);
	if (t)
		start_options_clear(t);
	ext_config_stop(d, name, req);
}

void tunnel_ctl_status(struct daemon *d, struct ctl_req *req, void *params)
{
	json_t *n = json_object_get(params, "name");
	struct status_walk w = { json_array(), json_is_string(n) ? json_string_value(n) : NULL };

	store_config_foreach(d->store, NULL, status_cb, &w);
	if (w.name && json_array_size(w.a) == 0) {
		json_decref(w.a);
		ctl_req_error(req, "not-found", "no packet-tunnel configuration named %s", w.name);
		return;
	}
	ctl_req_reply(req, json_pack("{s:o}", "tunnels", w.a));
}

void tunnel_ctl_watch(struct daemon *d, struct ctl_req *req, void *params)
{
	size_t i;

	(void)d;
	(void)params;
	for (i = 0; T && i < TUNNEL_WATCHERS_MAX; i++) {
		if (T->watchers[i] && !ctl_req_waiting(T->watchers[i])) {
			ctl_req_unref(T->watchers[i]);
			T->watchers[i] = NULL;
		}
		if (!T->watchers[i]) {
			T->watchers[i] = ctl_req_ref(req);
			ctl_req_event(req, "watching", json_object());
			return;
		}
	}
	ctl_req_error(req, "busy", "too many clients are watching tunnels (limit %d)", TUNNEL_WATCHERS_MAX);
}

/* ---- init and fini ------------------------------------------------------------------------ */

int tunnel_init(struct daemon *d)
{
	unsigned i;
	int r;

	T = calloc(1, sizeof(*T));
	if (!T)
		return -ENOMEM;
	T->d = d;
	if (d->opt.no_datapath)
		return 0;
	r = dp_route_open(&T->rt);
	if (r < 0) {
		free(T);
		T = NULL;
		return r;
	}
	/* A killed netextd leaves its tables and the rules pointing at them (its TUN devices
	 * went with its fds). */
	for (i = 0; i < TUNNEL_MAX; i++)
		dp_route_flush_table(T->rt, TUNNEL_TABLE_BASE + i);
	return 0;
}

void tunnel_fini(struct daemon *d)
{
	size_t i;

	if (!T)
		return;
	for (i = 0; i < TUNNEL_RECORDS_MAX; i++) {
		if (T->t[i].used && (T->t[i].ext || T->t[i].ifindex || T->t[i].s))
			teardown(d, &T->t[i]);
		start_options_clear(&T->t[i]);
	}
	for (i = 0; i < TUNNEL_WATCHERS_MAX; i++)
		if (T->watchers[i])
			ctl_req_unref(T->watchers[i]);
	dp_route_close(T->rt);
	free(T);
	T = NULL;
}
