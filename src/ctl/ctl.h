/* netextctl's parts: netextctl.c (the daemon's commands) and bundle_cmds.c (keygen, sign,
 * verify: local operations on bundle directories and key files, no daemon needed). */
#pragma once

#include <jansson.h>
#include <stdbool.h>

enum {
	EXIT_OK = 0,
	EXIT_FAILED = 1,      /* the daemon refused or the request failed */
	EXIT_USAGE = 2,
	EXIT_UNREACHABLE = 3, /* no daemon on the socket */
	EXIT_DENIED = 4,      /* permission-denied or forbidden */
	EXIT_NOT_FOUND = 5,
};

extern bool opt_json;

/* Each takes its words from the command name on (argv[0] = "keygen") and returns an exit
 * code. Errors are printed to stderr as "netextctl: ..." with what to do about them. */
int cmd_keygen(int argc, char **argv); /* keygen --team TEAM --output FILE [--force] */
int cmd_sign(int argc, char **argv);   /* sign BUNDLE --key FILE */
int cmd_verify(int argc, char **argv); /* verify BUNDLE [--key FILE.pub]... */

/* netextctl.c, for the other command files: */
int ctl_run(const char *method, json_t *params, void (*show)(json_t *)); /* request, print */
int ctl_connect(void);                  /* fd, or negative after printing why */
int ctl_send_line(int fd, const char *s);

/* flows_cmds.c: the content filter's flows. */
int cmd_flows(int argc, char **argv);  /* flows [--pending] [--follow] | flows allow|drop ID */
int cmd_filter(int argc, char **argv); /* filter: configurations and counters */

/* dns_cmds.c: split-DNS routes and the DNS proxy's status. */
int cmd_dns(int argc, char **argv);    /* dns route add|del|list | dns status */

/* packet_cmds.c: the packet filter's status. */
int cmd_packet(int argc, char **argv); /* packet status */

/* tunnel_cmds.c: packet tunnels. */
int cmd_tunnel(int argc, char **argv); /* tunnel start|stop NAME | tunnel status [NAME] */
