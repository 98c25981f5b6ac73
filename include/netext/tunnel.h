/* libnetext, packet tunnel: the packet-tunnel provider (NEPacketTunnelProvider for Linux).
 *
 * A VPN client as an unprivileged, supervised process. netextd creates the tunnel's TUN device
 * (multi-queue, with the kernel's segmentation offloads), applies the provider's network
 * settings (addresses, routes and policy-routing rules in a routing table and a mark of this
 * tunnel's own, split-DNS routes, the kill switch) and removes all of it when the tunnel stops
 * or the extension dies. The provider moves packets between the tunnel and its transport:
 *
 *     static void start(ne_provider *p, const ne_options *o, void *ud)
 *     {
 *             // connect to the server, then:
 *             const char *addrs[] = { "10.77.0.1/24", "fd77::1/64" };
 *             const char *routes[] = { "0.0.0.0/0", "::/0" };
 *             struct ne_tunnel_settings s = { .size = sizeof(s), .remote_address = "192.0.2.2",
 *                     .addresses = addrs, .n_addresses = 2, .included_routes = routes,
 *                     .n_included_routes = 2, .mtu = 1420 };
 *             ne_tunnel_set_network_settings(p, &s, applied, NULL); // applied → ne_provider_start_done
 *     }
 *     static void read_packets(ne_provider *p, const ne_tunnel_packet *pk, size_t n,
 *                              unsigned queue, void *ud)
 *     {
 *             // encrypt pk[0..n) and send them to the server
 *     }
 *     ... on a packet from the server: ne_tunnel_write_packets(p, &pkt, 1);
 *     ne_extension_register_packet_tunnel(ext, &lifecycle_ops, &tunnel_ops, NULL);
 *
 * Lifecycle: ops->start is startTunnel(options:completionHandler:): the tunnel is "connecting"
 * until ne_provider_start_done(), "connected" after it succeeds. ops->stop is
 * stopTunnel(with:completionHandler:); the library has stopped the packet threads (no
 * read_packets call is running or will come) before ops->stop runs, and the device fds stay
 * open until ne_provider_stop_done(), so the provider's own threads may still write. The start options are the configuration's options plus
 * those given to `netextctl tunnel start NAME --option KEY=VALUE`.
 *
 * Transport: a socket the provider makes itself would be routed into its own tunnel (with a
 * default route included) and dropped by the kill switch. ne_tunnel_open_socket() asks netextd
 * for a UDP or TCP socket marked to bypass every tunnel and the kill switch; use it for the
 * tunnel's transport. (The extension's cgroup is exempt from the kill switch as well, but only
 * a marked socket gets a source address of the physical network.)
 *
 * Packets: the host's packets for the tunnel arrive through ops->read_packets on one library
 * thread per queue (settings.queues), in batches; large TCP/UDP packets the kernel handed over
 * unsegmented are cut into packets of at most the tunnel MTU with complete checksums, so every
 * packet is an ordinary IPv4 or IPv6 packet. ne_tunnel_write_packets() delivers decrypted
 * packets to the host, from any thread. The kernel writes its own packets into a new device
 * (IPv6 router solicitations to ff02::2, for instance): a provider drops what it cannot route.
 *
 * Threading: read_packets runs on the packet threads, never on the dispatch thread; with
 * several queues on several threads at once. Everything else (settings, lifecycle, cancel,
 * reasserting, sockets and their completions) is for the dispatch thread, as extension.h
 * says, except ne_tunnel_write_packets() and ne_tunnel_interface_name(). */
#ifndef NETEXT_TUNNEL_H
#define NETEXT_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netext/extension.h>

#ifdef __cplusplus
extern "C" {
#endif

/* NEPacketTunnelNetworkSettings, flattened. Lists are arrays of strings. */
struct ne_tunnel_settings {
	uint32_t size; /* sizeof(struct ne_tunnel_settings) */
	/* tunnelRemoteAddress: the server, shown in the status ("" / NULL: none). */
	const char *remote_address;
	/* IPv4 addresses with masks and IPv6 addresses with prefix lengths: "10.77.0.1/24",
	 * "fd77::1/64" (no length: /32, /128). */
	const char *const *addresses;
	size_t n_addresses;
	/* Routes into the tunnel: "0.0.0.0/0", "::/0" (the default routes), "10.8.0.0/16".
	 * None: only the addresses' own networks. */
	const char *const *included_routes;
	size_t n_included_routes;
	/* Routes that stay outside the tunnel even though an included route covers them. */
	const char *const *excluded_routes;
	size_t n_excluded_routes;
	/* NEDNSSettings: servers ("10.77.0.53", "fd77::53", "10.77.0.53:5353"); matchDomains:
	 * names under these domains go to the servers (split DNS). With servers and no match
	 * domains, all DNS goes to the servers. searchDomains are shown in the status only:
	 * netextd does not edit the host's resolv.conf. */
	const char *const *dns_servers;
	size_t n_dns_servers;
	const char *const *search_domains;
	size_t n_search_domains;
	const char *const *match_domains;
	size_t n_match_domains;
	/* The tunnel MTU; 0: 1500 - tunnel_overhead (tunnelOverheadBytes), or 1420 when both 0. */
	uint32_t mtu;
	uint32_t tunnel_overhead;
	/* Kill switch: with it, every packet that does not go through a tunnel is dropped, except
	 * the tunnel's transport (ne_tunnel_open_socket), loopback, DHCP, IPv6 neighbour discovery
	 * and, with exclude_local_networks, the directly connected networks. */
	bool include_all_networks;
	/* Directly connected networks (and link-local) stay outside the tunnel. */
	bool exclude_local_networks;
	/* The tunnel's routes win over more specific routes to directly connected networks;
	 * without it, connected networks stay local. */
	bool enforce_routes;
	/* TUN queues, each read by its own packet thread: 1..4; 0: 1. Fixed by the first
	 * settings that make the device; later settings must name the same number (or 0). */
	uint16_t queues;
};

/* A packet read from or written to the tunnel: an IPv4 or IPv6 packet from its IP header on. */
typedef struct ne_tunnel_packet {
	const uint8_t *bytes; /* read: valid during the callback only */
	size_t len;
	int family;           /* AF_INET or AF_INET6; on write, 0: from the version field */
} ne_tunnel_packet;

typedef void (*ne_tunnel_settings_done)(ne_provider *provider, int error, const char *message,
					void *userdata);

/* setTunnelNetworkSettings(_:completionHandler:): applies settings (NULL clears them: the
 * device stays, without addresses, routes, DNS or kill switch). Callable any time after start
 * began, again and again; each call replaces the previous settings as a whole. The first
 * settings make the device and start the packet threads. Returns 0 once sent (done follows:
 * 0, or a negative errno and a message naming the bad field), -EINVAL for a provider that is
 * not a starting or started packet tunnel or for bad settings, -E2BIG when the lists are too
 * long (32 addresses, 512 included and 512 excluded routes, 8 DNS servers, 16 search and 256
 * match domains), -EBUSY while an earlier call is still waiting for its done. */
NE_EXPORT int ne_tunnel_set_network_settings(ne_provider *provider, const struct ne_tunnel_settings *settings,
					     ne_tunnel_settings_done done, void *userdata);

/* Delivers packets to the host as if they arrived on the tunnel device (packetFlow
 * writePackets). Any thread. Returns how many were written (the others were dropped: malformed
 * ones after the first, and the rest once the device's queue was full), or -EINVAL for a
 * malformed packet at index 0, -ENOTCONN before the device exists or after stop. Consecutive
 * TCP segments of one flow within one call reach the host as one large packet (as the kernel's
 * GRO would merge them), so writing a whole receive batch at once is cheaper for the host. */
NE_EXPORT int ne_tunnel_write_packets(ne_provider *provider, const ne_tunnel_packet *packets, size_t n);

/* The device's name ("netext0") once the first settings made it, else NULL. Any thread. */
NE_EXPORT const char *ne_tunnel_interface_name(const ne_provider *provider);

/* reasserting: the provider is reconnecting (the status shows "reasserting"); false when
 * it is back. */
NE_EXPORT int ne_tunnel_set_reasserting(ne_provider *provider, bool reasserting);

/* cancelTunnelWithError: the provider gives up. netextd records error (a negative errno) and
 * message as the last disconnect error, removes the tunnel's settings and stops the provider
 * (ops->stop with NE_STOP_REASON_PROVIDER_FAILED follows). */
NE_EXPORT int ne_tunnel_cancel(ne_provider *provider, int error, const char *message);

typedef void (*ne_tunnel_socket_done)(ne_provider *provider, int fd, int error, const char *message,
				      void *userdata);

/* Asks netextd for a transport socket that bypasses every tunnel and the kill switch: family
 * AF_INET, AF_INET6, or AF_UNSPEC for an IPv6 socket that also handles IPv4 (v4-mapped);
 * protocol IPPROTO_UDP or IPPROTO_TCP; port the local port to bind (0: any; netextd binds it;
 * a port below 1024 only when the administrator set privileged_ports=yes, else -EACCES).
 * done gets the fd (the caller owns it: close-on-exec, blocking) or fd -1 with a negative
 * errno and a message. Returns 0 once asked. */
NE_EXPORT int ne_tunnel_open_socket(ne_provider *provider, int family, int protocol, uint16_t port,
				    ne_tunnel_socket_done done, void *userdata);

/* The packet callbacks. Set .size = sizeof(struct ne_tunnel_ops). */
struct ne_tunnel_ops {
	uint32_t size;
	/* packetFlow readPackets: packets the host sent into the tunnel, n ≥ 1, on the packet
	 * thread of queue (0 .. queues - 1). Required. */
	void (*read_packets)(ne_provider *provider, const ne_tunnel_packet *packets, size_t n,
			     unsigned queue, void *userdata);
};

/* Registers a packet-tunnel provider: ops as for ne_extension_register (start is startTunnel,
 * stop is stopTunnel), tunnel_ops for the packets. */
NE_EXPORT int ne_extension_register_packet_tunnel(ne_extension *ext, const struct ne_provider_ops *ops,
						  const struct ne_tunnel_ops *tunnel_ops, void *userdata);

#ifdef __cplusplus
}
#endif

#endif
