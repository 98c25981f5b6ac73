/* nfq_loop: an in-process allow-all NFQUEUE loop on dp_nft + dp_nfq.
 *
 * Used by the integration tests and as the benchmark baseline ("in-process batch-verdict
 * NFQUEUE loop"): it installs its own table with an output-hook queue rule, accepts every
 * packet, and on SIGTERM/SIGINT deletes the table and prints "received=N accepted=N".
 * After SIGKILL the table stays behind; with --bypass traffic then passes (fail open). */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>

#include "dp_nfq.h"
#include "dp_nft.h"
#include "log.h"
#include "util.h"

/* Packets carrying this mark bit are not queued, so a packet re-injected with it (REPEAT)
 * cannot loop. */
#define SKIP_MARK 0x10000000u

struct options {
	const char *table;
	uint16_t queue;
	int udp_dport, tcp_dport; /* -1: not selected */
	const char *count_file;
	bool bypass;
	uint32_t copy_range; /* bytes of each packet copied to the loop (default 128) */
};

static void usage(void)
{
	fprintf(stderr, "usage: nfq_loop --table NAME --queue N [--udp-dport P] [--tcp-dport P]\n"
			"                [--count-file F] [--bypass] [--copy-range N]\n");
	exit(2);
}

static int parse_port(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < 1 || v > 65535)
		usage();
	return (int)v;
}

static void parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{"table", required_argument, NULL, 't'},     {"queue", required_argument, NULL, 'q'},
		{"udp-dport", required_argument, NULL, 'u'}, {"tcp-dport", required_argument, NULL, 'T'},
		{"count-file", required_argument, NULL, 'c'}, {"bypass", no_argument, NULL, 'b'},
		{"copy-range", required_argument, NULL, 'r'}, {NULL, 0, NULL, 0}};
	int c;

	*o = (struct options){.udp_dport = -1, .tcp_dport = -1, .copy_range = 128};
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 't': o->table = optarg; break;
		case 'q': o->queue = (uint16_t)parse_port(optarg); break;
		case 'u': o->udp_dport = parse_port(optarg); break;
		case 'T': o->tcp_dport = parse_port(optarg); break;
		case 'c': o->count_file = optarg; break;
		case 'b': o->bypass = true; break;
		case 'r': o->copy_range = (uint32_t)parse_port(optarg); break; /* 1 .. 65535 */
		default: usage();
		}
	}
	if (!o->table || optind != argc)
		usage();
}

/* queue rule: meta mark & SKIP_MARK != SKIP_MARK [meta l4proto P th dport N] queue */
static int add_queue_rule(struct dp_ruleset *rs, const struct options *o, uint8_t proto, int port)
{
	struct dp_rule r = {0};
	struct dp_match skip = {.kind = DP_MATCH_META_MARK, .neg = true,
				.mark = {.mask = SKIP_MARK, .value = SKIP_MARK}};
	struct dp_match l4 = {.kind = DP_MATCH_L4PROTO, .l4proto = proto};
	struct dp_match dport = {.kind = DP_MATCH_DPORT, .port = (uint16_t)port};
	struct dp_action q = {.kind = DP_ACTION_QUEUE,
			      .queue = {.num = o->queue, .flags = o->bypass ? DP_QUEUE_F_BYPASS : 0}};
	int err;

	if ((err = dp_ruleset_find_chain(rs, "output", &r.chain)) < 0 || (err = dp_rule_add_match(&r, &skip)) < 0)
		return err;
	if (port > 0 && ((err = dp_rule_add_match(&r, &l4)) < 0 || (err = dp_rule_add_match(&r, &dport)) < 0))
		return err;
	if ((err = dp_rule_add_action(&r, &q)) < 0)
		return err;
	return dp_ruleset_add_rule(rs, &r);
}

static int build_ruleset(struct dp_ruleset *rs, const struct options *o)
{
	int err = 0;

	dp_ruleset_init(rs, o->table);
	if ((err = dp_ruleset_add_chain(rs, "output", DP_CHAIN_FILTER, DP_HOOK_OUTPUT, DP_PRIO_FILTER, NULL)) < 0)
		return err;
	if (o->udp_dport > 0)
		err = add_queue_rule(rs, o, IPPROTO_UDP, o->udp_dport);
	if (err == 0 && o->tcp_dport > 0)
		err = add_queue_rule(rs, o, IPPROTO_TCP, o->tcp_dport);
	if (err == 0 && o->udp_dport < 0 && o->tcp_dport < 0)
		err = add_queue_rule(rs, o, 0, 0); /* everything locally sent */
	return err;
}

static void accept_all(struct dp_nfq *q, const struct dp_packet *p, struct dp_verdict *v, void *userdata)
{
	/* v is already a plain ACCEPT: the batch verdict path. */
}

static void write_counts(const char *path, const struct dp_nfq_stats *st)
{
	char tmp[4096];
	FILE *f;

	if (!path || snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return;
	if (!(f = fopen(tmp, "we")))
		return;
	fprintf(f, "received=%llu accepted=%llu\n", (unsigned long long)st->received,
		(unsigned long long)st->accepted);
	if (fclose(f) == 0)
		(void)rename(tmp, path);
}

static int open_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return ne_negerrno();
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* Runs until a signal; count file at most every 200 ms, only when counters moved. */
static int run(struct dp_nfq *q, int sfd, const char *count_file)
{
	struct pollfd pfd[2] = {{.fd = dp_nfq_fd(q), .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
	struct dp_nfq_stats st;
	uint64_t written = UINT64_MAX;
	int err;

	for (;;) {
		if (poll(pfd, 2, 200) < 0 && errno != EINTR)
			return ne_negerrno();
		if (pfd[0].revents && (err = dp_nfq_dispatch(q)) < 0)
			return err;
		dp_nfq_get_stats(q, &st);
		if (st.received != written) {
			write_counts(count_file, &st);
			written = st.received;
		}
		if (pfd[1].revents)
			return 0;
	}
}

static int setup(const struct options *o, struct dp_nft **ret_nft, struct dp_nfq **ret_q)
{
	struct dp_nfq_options qo = {.copy_range = o->copy_range, .flags = DP_NFQ_F_GSO | DP_NFQ_F_UID_GID};
	struct dp_ruleset rs;
	enum dp_queue_backend qb;
	int err;

	if ((err = dp_nft_open(ret_nft)) < 0)
		return err;
	if ((err = dp_nft_probe_queue(*ret_nft, &qb)) < 0)
		return err;
	/* Bind the queue before the rule exists, so no packet waits for a reader. */
	if ((err = dp_nfq_open(ret_q, o->queue, &qo, accept_all, NULL)) < 0)
		return err;
	if ((err = build_ruleset(&rs, o)) == 0)
		err = dp_nft_apply(*ret_nft, &rs);
	dp_ruleset_free(&rs);
	return err;
}

int main(int argc, char **argv)
{
	struct options o;
	struct dp_nft *nft = NULL;
	struct dp_nfq *q = NULL;
	struct dp_nfq_stats st = {0};
	int sfd, err;

	log_init("nfq_loop", 0);
	parse_args(argc, argv, &o);
	if ((sfd = open_signals()) < 0)
		fatalx("signalfd: %s", strerror(-sfd));
	err = setup(&o, &nft, &q);
	if (err == 0)
		err = run(q, sfd, o.count_file);
	if (q) {
		dp_nfq_get_stats(q, &st);
		dp_nfq_close(q);
	}
	if (nft && dp_nft_table_delete(nft, o.table) < 0)
		log_warnx("could not delete table %s", o.table);
	dp_nft_close(nft);
	write_counts(o.count_file, &st);
	if (err < 0) {
		log_warnx("nfq_loop: %s", strerror(-err));
		return 1;
	}
	printf("received=%llu accepted=%llu\n", (unsigned long long)st.received,
	       (unsigned long long)st.accepted);
	fprintf(stderr, "nfq_loop: dropped=%llu batch_msgs=%llu verdict_msgs=%llu sends=%llu errors=%llu\n",
		(unsigned long long)st.dropped, (unsigned long long)st.batch_msgs,
		(unsigned long long)st.verdict_msgs, (unsigned long long)st.sends,
		(unsigned long long)st.errors);
	return 0;
}
