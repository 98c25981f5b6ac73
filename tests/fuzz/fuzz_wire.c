/* Fuzz harness for the daemon ⇄ extension codec (src/common/wire.c), the first code that
 * reads bytes from an extension.
 *
 * Besides what ASan/UBSan catch, it checks one property: every payload a decoder accepts
 * re-encodes to exactly the same bytes. A decoder that accepts something its encoder would
 * write differently reads the wire differently from the sender, which is a bug even when
 * it does not crash. The input is tried as a whole frame (header, then the decoder for its
 * type) and, to reach decoders the header check would gate off, as a bare payload for
 * every decoder. */
#include "fuzz.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

#define NOT_DECODED 1 /* a codec's return when the decoder refused the payload */

/* Decodes p with one decoder; if it accepts, re-encodes into b and returns the frame
 * length (or the encoder's negative errno). */
typedef int (*roundtrip_fn)(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b);

struct codec {
	uint16_t type;  /* the type the encoder writes */
	bool has_id;    /* whether the encoder writes the caller's id (else 0) */
	roundtrip_fn fn;
};

static uint8_t out[NE_WIRE_MAX];

/* Decoders write their output only on success (STYLE.md): a refused frame must leave the
 * caller's struct as it was, since callers may keep using it. */
static void poison(void *m, size_t size)
{
	memset(m, 0xa5, size);
}

static int refused(const void *m, size_t size)
{
	const uint8_t *b = m;
	size_t i;

	for (i = 0; i < size; i++)
		if (b[i] != 0xa5) {
			fprintf(stderr, "fuzz-wire: a decoder wrote its output on failure\n");
			abort();
		}
	return NOT_DECODED;
}

static int rt_hello(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_hello m;

	poison(&m, sizeof(m));
	if (ne_msg_hello_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_hello_encode(b, &m);
}

static int rt_welcome(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_welcome m;

	poison(&m, sizeof(m));
	if (ne_msg_welcome_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_welcome_encode(b, &m);
}

static int rt_empty(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	if (ne_msg_empty_decode(p, n) < 0)
		return NOT_DECODED;
	return ne_msg_empty_encode(b, type, id);
}

static int rt_start(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	static struct ne_msg_start m; /* 2 KiB of views: keep it off the stack */

	poison(&m, sizeof(m));
	if (ne_msg_start_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_start_encode(b, id, &m);
}

static int rt_result(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_result m;

	poison(&m, sizeof(m));
	if (ne_msg_result_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_result_encode(b, id, &m);
}

static int rt_stop(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_stop m;

	poison(&m, sizeof(m));
	if (ne_msg_stop_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_stop_encode(b, id, &m);
}

static int rt_app_message(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_app_message m;

	poison(&m, sizeof(m));
	if (ne_msg_app_message_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_app_message_encode(b, id, &m);
}

static int rt_app_reply(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_app_reply m;

	poison(&m, sizeof(m));
	if (ne_msg_app_reply_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_app_reply_encode(b, id, &m);
}

static int rt_log(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_log m;

	poison(&m, sizeof(m));
	if (ne_msg_log_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_log_encode(b, &m);
}

/* Indexed by type - 1. */
static const struct codec codecs[NE_MSG_TYPE_MAX] = {
	{ NE_MSG_HELLO, false, rt_hello },
	{ NE_MSG_WELCOME, false, rt_welcome },
	{ NE_MSG_PING, true, rt_empty },
	{ NE_MSG_PONG, true, rt_empty },
	{ NE_MSG_START, true, rt_start },
	{ NE_MSG_START_DONE, true, rt_result },
	{ NE_MSG_STOP, true, rt_stop },
	{ NE_MSG_STOP_DONE, true, rt_empty },
	{ NE_MSG_APP_MESSAGE, true, rt_app_message },
	{ NE_MSG_APP_REPLY, true, rt_app_reply },
	{ NE_MSG_LOG, false, rt_log },
};

static void die(const struct codec *c, const char *why)
{
	fprintf(stderr, "fuzz-wire: %s: %s\n", ne_msg_type_name(c->type), why);
	abort();
}

/* hdr, when not NULL, is the input's header, which the re-encoded frame must also match
 * (except the id for encoders that always write 0). */
static void roundtrip(const struct codec *c, const uint8_t *hdr, const uint8_t *p, size_t n, uint64_t id)
{
	struct ne_wbuf b = { out, 0, sizeof(out), 0 };
	int len = c->fn(p, n, c->type, id, &b);

	if (len == NOT_DECODED)
		return;
	if (len < 0)
		die(c, "the encoder refuses what the decoder accepted");
	if ((size_t)len != NE_WIRE_HDR_LEN + n || (n && memcmp(out + NE_WIRE_HDR_LEN, p, n) != 0))
		die(c, "re-encoded payload differs from the decoded one");
	if (hdr && memcmp(out, hdr, c->has_id ? NE_WIRE_HDR_LEN : 8) != 0)
		die(c, "re-encoded header differs from the decoded one");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ne_msg_hdr h;
	size_t i;

	if (ne_msg_hdr_decode(data, size, &h) == 0) {
		const struct codec *c = &codecs[h.type - 1];

		if (c->type != h.type)
			die(c, "codec table out of order");
		(void)ne_msg_from_extension(h.type);
		roundtrip(c, data, data + NE_WIRE_HDR_LEN, size - NE_WIRE_HDR_LEN, h.id);
	}
	for (i = 0; i < sizeof(codecs) / sizeof(codecs[0]); i++)
		roundtrip(&codecs[i], NULL, data, size, 0);
	return 0;
}

/* One valid frame of every type, for the standalone driver and the seed corpus. */
static void add_frame(fuzz_add_fn add, void *userdata, int len)
{
	if (len < 0) {
		fprintf(stderr, "fuzz-wire: building a seed failed: %d\n", len);
		abort();
	}
	add(out, (size_t)len, userdata);
}

void fuzz_seeds(fuzz_add_fn add, void *userdata)
{
	static const struct ne_view keys[] = { { "greeting", 8 }, { "mtu", 3 } };
	static const struct ne_view values[] = { { "hello", 5 }, { "1400", 4 } };
	struct ne_wbuf b = { out, 0, sizeof(out), 0 };
	struct ne_msg_hello hello = { 1, 1, { "libnetext 0.1.0", 15 }, 2, { 1, 3 } };
	struct ne_msg_welcome welcome = { 1, { "com.example.filter", 18 }, 5000 };
	struct ne_msg_result result = { -22, { "bad option", 10 } };
	struct ne_msg_stop stop = { 7, 2 };
	struct ne_msg_app_message msg = { 7, { "\x00\x01\x02ping", 7 } };
	struct ne_msg_app_reply reply = { 0, { "pong", 4 } };
	struct ne_msg_log lg = { 6, { "started", 7 } };
	static struct ne_msg_start start = { .provider = 7, .type = 1, .config = { "demo", 4 }, .n_options = 2 };

	memcpy(start.keys, keys, sizeof(keys));
	memcpy(start.values, values, sizeof(values));
	add_frame(add, userdata, ne_msg_hello_encode(&b, &hello));
	add_frame(add, userdata, ne_msg_welcome_encode(&b, &welcome));
	add_frame(add, userdata, ne_msg_empty_encode(&b, NE_MSG_PING, 1));
	add_frame(add, userdata, ne_msg_empty_encode(&b, NE_MSG_PONG, 1));
	add_frame(add, userdata, ne_msg_start_encode(&b, 2, &start));
	add_frame(add, userdata, ne_msg_result_encode(&b, 2, &result));
	add_frame(add, userdata, ne_msg_stop_encode(&b, 3, &stop));
	add_frame(add, userdata, ne_msg_empty_encode(&b, NE_MSG_STOP_DONE, 3));
	add_frame(add, userdata, ne_msg_app_message_encode(&b, 4, &msg));
	add_frame(add, userdata, ne_msg_app_reply_encode(&b, 4, &reply));
	add_frame(add, userdata, ne_msg_log_encode(&b, &lg));
}
