/*
 * metacni-shim: the CNI executable installed in the node's binDir.
 *
 * A static binary with no interpreter and no shared library: it runs in an empty root
 * filesystem. It forwards one CNI call (the CNI_* / METACNI_* environment and the stdin config)
 * to the warm metacni daemon over HTTP/1.1 on a unix socket, and prints the daemon's answer.
 * The protocol ("shim <-> daemon protocol v1", metacni/daemon/protocol.py; why C:
 * docs/design/1501-static-shim-in-c.md):
 *
 *   POST /cni  Metacni-Protocol: 1
 *   {"env": {"CNI_COMMAND": "ADD", ...}, "config": "<base64 of the exact stdin bytes>"}
 *
 *   -> Metacni-Protocol: 1, body = exactly what the shim prints; 200 -> exit 0, else exit 1.
 *
 * Handled here without the daemon:
 *   - VERSION (the supported versions list equals metacni.spec.versions.ALL_VERSIONS);
 *   - daemon unreachable: CNI error 11; for a DEL the request is recorded atomically (0600) as
 *     <pendingDir>/<container id>.<ifname>.<hash>.json (record_name(): bounded, one per attachment),
 *     and the daemon replays it when it starts;
 *   - a DEL the daemon drops unanswered (it was stopping) or answers 503: recorded the same way
 *     (a replayed DEL is a no-op), exit 0;
 *   - an answer without "Metacni-Protocol: 1", a lost connection or a timeout: CNI error 11,
 *     never re-sent.
 * Stdout always gets exactly one document (or nothing for a successful DEL); logs go to stderr.
 *
 * Settings (environment): METACNI_SOCKET (else the config's top-level "daemonSocket", else
 * /run/metacni/metacni.sock), METACNI_PENDING_DIR (else "<cniDir>/pending-del" from the config,
 * else /var/lib/cni/metacni/pending-del), METACNI_TIMEOUT (seconds for the answer; 120, DEL 30),
 * METACNI_CONNECT_TIMEOUT (seconds to connect while the daemon's backlog is full; 5).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define PROTOCOL "1"
#define DEFAULT_SOCKET "/run/metacni/metacni.sock"
#define DEFAULT_CNI_DIR "/var/lib/cni/metacni"
#define TRY_AGAIN_LATER 11
#define INVALID_CONFIG 7
#define MAX_STDIN (1024 * 1024)          /* the daemon refuses bodies over 1 MiB anyway */
#define MAX_ANSWER (16 * 1024 * 1024)    /* a CNI result is a few KiB */
#define RECORD_ID_PART 64    /* pending-DEL record names: record_name() */
#define RECORD_IFNAME_PART 16
#define RECORD_HASH_HEX 32

/* Kept equal to metacni.spec.versions.ALL_VERSIONS (tests/shim/test_shim.py checks). */
static const char *const SUPPORTED_VERSIONS[] = {"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
#define N_VERSIONS (sizeof(SUPPORTED_VERSIONS) / sizeof(SUPPORTED_VERSIONS[0]))

/* ------------------------------------------------------------------ growable buffer */
typedef struct {
    char *data;
    size_t len, cap;
} buf_t;

static void die_oom(void)
{
    static const char msg[] = "metacni-shim: out of memory\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(1);
}

static void buf_reserve(buf_t *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->len)
        die_oom();
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        die_oom();
    b->data = p;
    b->cap = cap;
}

static void buf_add(buf_t *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_adds(buf_t *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_addc(buf_t *b, char c) { buf_add(b, &c, 1); }

static void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* ------------------------------------------------------------------ JSON writing */

/* Append s[0..n) as a JSON string literal. Quotes, backslashes and control characters are
 * escaped; bytes >= 0x80 are copied as they are (the daemon answers code 6 for invalid UTF-8). */
static void json_string(buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    buf_addc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': buf_add(b, "\\\"", 2); break;
        case '\\': buf_add(b, "\\\\", 2); break;
        case '\n': buf_add(b, "\\n", 2); break;
        case '\r': buf_add(b, "\\r", 2); break;
        case '\t': buf_add(b, "\\t", 2); break;
        case '\b': buf_add(b, "\\b", 2); break;
        case '\f': buf_add(b, "\\f", 2); break;
        default:
            if (c < 0x20 || c == 0x7f) {
                char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                buf_add(b, esc, 6);
            } else {
                buf_addc(b, (char)c);
            }
        }
    }
    buf_addc(b, '"');
}

static void json_cstring(buf_t *b, const char *s) { json_string(b, s, strlen(s)); }

static void base64(buf_t *b, const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    buf_reserve(b, (n + 2) / 3 * 4);
    char *o = b->data + b->len;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = tab[(v >> 6) & 63];
        *o++ = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
}

/* ------------------------------------------------------------------ JSON top-level key scan
 *
 * Finds the string values of a few top-level keys of the stdin config (daemonSocket, cniDir,
 * cniVersion) without a JSON library. Keys and values are decoded (escapes, \uXXXX with surrogate
 * pairs; a lone surrogate is encoded like Python's "surrogatepass"). Like Python's json, the last
 * duplicate key wins, and a value that is not a string counts as absent. A document that is not
 * a JSON object, or that is malformed anywhere, yields nothing at all (Python's json would refuse
 * it too). Nested values are skipped with a depth counter, not recursion.
 */
typedef struct {
    const char *name;
    buf_t value;
    int found;
} scan_key_t;

typedef struct {
    const unsigned char *p, *end;
} cursor_t;

static void skip_ws(cursor_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char h = p[i];
        v <<= 4;
        if (h >= '0' && h <= '9') v |= (unsigned)(h - '0');
        else if (h >= 'a' && h <= 'f') v |= (unsigned)(h - 'a' + 10);
        else if (h >= 'A' && h <= 'F') v |= (unsigned)(h - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static void put_utf8(buf_t *b, unsigned cp)
{
    char u[4];
    if (cp < 0x80) {
        u[0] = (char)cp;
        buf_add(b, u, 1);
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 63));
        buf_add(b, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12);
        u[1] = (char)(0x80 | ((cp >> 6) & 63));
        u[2] = (char)(0x80 | (cp & 63));
        buf_add(b, u, 3);
    } else {
        u[0] = (char)(0xf0 | cp >> 18);
        u[1] = (char)(0x80 | ((cp >> 12) & 63));
        u[2] = (char)(0x80 | ((cp >> 6) & 63));
        u[3] = (char)(0x80 | (cp & 63));
        buf_add(b, u, 4);
    }
}

/* Parse a JSON string at c->p (which points at the opening quote). Decodes into out when out is
 * not NULL. Returns 0, or -1 when malformed (unterminated, raw control character, bad escape). */
static int scan_string(cursor_t *c, buf_t *out)
{
    if (c->p >= c->end || *c->p != '"')
        return -1;
    c->p++;
    while (c->p < c->end) {
        unsigned char ch = *c->p;
        if (ch == '"') {
            c->p++;
            return 0;
        }
        if (ch < 0x20)
            return -1; /* Python's json (strict=True) refuses raw control characters */
        if (ch != '\\') {
            const unsigned char *start = c->p;
            while (c->p < c->end && *c->p != '"' && *c->p != '\\' && *c->p >= 0x20)
                c->p++;
            if (out)
                buf_add(out, start, (size_t)(c->p - start));
            continue;
        }
        if (c->end - c->p < 2)
            return -1;
        unsigned char e = c->p[1];
        c->p += 2;
        char lit;
        switch (e) {
        case '"': lit = '"'; break;
        case '\\': lit = '\\'; break;
        case '/': lit = '/'; break;
        case 'b': lit = '\b'; break;
        case 'f': lit = '\f'; break;
        case 'n': lit = '\n'; break;
        case 'r': lit = '\r'; break;
        case 't': lit = '\t'; break;
        case 'u': {
            unsigned cp;
            if (c->end - c->p < 4 || hex4(c->p, &cp))
                return -1;
            c->p += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && c->end - c->p >= 6 && c->p[0] == '\\' && c->p[1] == 'u') {
                unsigned lo;
                if (hex4(c->p + 2, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    c->p += 6;
                }
            }
            if (out)
                put_utf8(out, cp);
            continue;
        }
        default:
            return -1;
        }
        if (out)
            buf_addc(out, lit);
    }
    return -1;
}

static int skip_word(cursor_t *c, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return -1;
    c->p += n;
    return 0;
}

static int skip_digits(cursor_t *c)
{
    const unsigned char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
        c->p++;
    return c->p == start ? -1 : 0;
}

/* Skip a number or a literal as Python's json accepts them: true, false, null, NaN, Infinity,
 * -Infinity, and -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?. */
static int skip_scalar(cursor_t *c)
{
    unsigned char ch = *c->p;
    if (ch == 't') return skip_word(c, "true");
    if (ch == 'f') return skip_word(c, "false");
    if (ch == 'n') return skip_word(c, "null");
    if (ch == 'N') return skip_word(c, "NaN");
    if (ch == 'I') return skip_word(c, "Infinity");
    if (ch == '-') {
        c->p++;
        if (c->p < c->end && *c->p == 'I')
            return skip_word(c, "Infinity");
    }
    if (c->p >= c->end)
        return -1;
    if (*c->p == '0')
        c->p++;
    else if (skip_digits(c))
        return -1;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (skip_digits(c))
            return -1;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (skip_digits(c))
            return -1;
    }
    return 0;
}

/* Skip one JSON value of any kind. Returns 0, or -1 when malformed. Containers are matched
 * with an explicit stack of brackets (bounded: deeper documents are refused). */
static int skip_value(cursor_t *c)
{
    char stack[4096];
    size_t depth = 0;
    for (;;) {
        skip_ws(c);
        if (c->p >= c->end)
            return -1;
        unsigned char ch = *c->p;
        if (ch == '{' || ch == '[') {
            if (depth == sizeof stack)
                return -1;
            stack[depth++] = (char)ch;
            c->p++;
            skip_ws(c);
            if (c->p < c->end && *c->p == (ch == '{' ? '}' : ']')) {
                c->p++;
                depth--;
                goto after_value;
            }
            if (ch == '{')
                goto key;
            continue;
        }
        if (ch == '"') {
            if (scan_string(c, NULL))
                return -1;
        } else {
            if (skip_scalar(c))
                return -1;
        }
    after_value:
        if (depth == 0)
            return 0;
        skip_ws(c);
        if (c->p >= c->end)
            return -1;
        ch = *c->p;
        if (ch == ',') {
            c->p++;
            if (stack[depth - 1] == '[')
                continue;
        key:
            skip_ws(c);
            if (scan_string(c, NULL))
                return -1;
            skip_ws(c);
            if (c->p >= c->end || *c->p != ':')
                return -1;
            c->p++;
            continue;
        }
        if (ch == (stack[depth - 1] == '{' ? '}' : ']')) {
            c->p++;
            depth--;
            goto after_value;
        }
        return -1;
    }
}

/* Fill keys[i].value/found from the top level of doc. Returns 0, or -1 (and nothing found)
 * when doc is not a well-formed JSON object. */
static int scan_top_level(const char *doc, size_t n, scan_key_t *keys, size_t nkeys)
{
    cursor_t c = {(const unsigned char *)doc, (const unsigned char *)doc + n};
    buf_t key = {0};
    buf_t value = {0};
    int rc = -1;
    if (n >= 3 && memcmp(doc, "\xef\xbb\xbf", 3) == 0)
        c.p += 3; /* a UTF-8 byte order mark, as Python's json.loads(bytes) accepts */
    skip_ws(&c);
    if (c.p >= c.end || *c.p != '{')
        goto out;
    c.p++;
    skip_ws(&c);
    if (c.p < c.end && *c.p == '}') {
        c.p++;
        goto done;
    }
    for (;;) {
        skip_ws(&c);
        key.len = 0;
        buf_reserve(&key, 0);
        if (scan_string(&c, &key))
            goto out;
        skip_ws(&c);
        if (c.p >= c.end || *c.p != ':')
            goto out;
        c.p++;
        skip_ws(&c);
        scan_key_t *k = NULL;
        for (size_t i = 0; i < nkeys; i++)
            if (strlen(keys[i].name) == key.len && memcmp(keys[i].name, key.data, key.len) == 0)
                k = &keys[i];
        if (k && c.p < c.end && *c.p == '"') {
            value.len = 0;
            buf_reserve(&value, 0);
            if (scan_string(&c, &value))
                goto out;
            k->value.len = 0;
            buf_add(&k->value, value.data, value.len);
            k->found = 1;
        } else {
            if (skip_value(&c))
                goto out;
            if (k)
                k->found = 0;
        }
        skip_ws(&c);
        if (c.p < c.end && *c.p == ',') {
            c.p++;
            continue;
        }
        if (c.p < c.end && *c.p == '}') {
            c.p++;
            break;
        }
        goto out;
    }
done:
    skip_ws(&c);
    rc = c.p == c.end ? 0 : -1;
out:
    if (rc)
        for (size_t i = 0; i < nkeys; i++)
            keys[i].found = 0;
    free(key.data);
    free(value.data);
    return rc;
}

/* ------------------------------------------------------------------ I/O helpers */
static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
    buf_t b = {0};
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n >= 0) {
        buf_adds(&b, "metacni-shim: ");
        buf_reserve(&b, (size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(b.data + b.len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b.len += (size_t)n;
        buf_addc(&b, '\n');
        (void)write_all(2, b.data, b.len);
    }
    free(b.data);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Milliseconds left until deadline, for poll (at least 0). */
static int ms_left(double deadline)
{
    double left = (deadline - now()) * 1000.0;
    if (left <= 0)
        return 0;
    if (left > INT_MAX)
        return INT_MAX;
    return (int)left + 1;
}

/* ------------------------------------------------------------------ the call */
typedef struct {
    const char *command;
    buf_t stdin_data;
    scan_key_t keys[3]; /* daemonSocket, cniDir, cniVersion */
    const char *socket_path;
    buf_t body;
} call_t;

enum { K_SOCKET, K_CNIDIR, K_VERSION };

static const char *key_value(call_t *call, int k)
{
    scan_key_t *key = &call->keys[k];
    if (!key->found || key->value.len == 0 || memchr(key->value.data, '\0', key->value.len))
        return NULL;
    return key->value.data;
}

/* Print a CNI error object on stdout and return 1 (the exit status). */
static int cni_error(call_t *call, int code, const char *msg, const char *details)
{
    buf_t b = {0};
    buf_addc(&b, '{');
    const char *version = key_value(call, K_VERSION);
    if (version)
        for (size_t i = 0; i < N_VERSIONS; i++)
            if (strcmp(version, SUPPORTED_VERSIONS[i]) == 0) {
                buf_adds(&b, "\"cniVersion\": ");
                json_cstring(&b, version);
                buf_adds(&b, ", ");
            }
    buf_printf(&b, "\"code\": %d, \"msg\": ", code);
    json_cstring(&b, msg);
    buf_adds(&b, ", \"details\": ");
    json_cstring(&b, details);
    buf_adds(&b, "}\n");
    (void)write_all(1, b.data, b.len);
    logmsg("%s: %s", msg, details);
    free(b.data);
    return 1;
}

static int version_answer(call_t *call)
{
    const char *wanted = SUPPORTED_VERSIONS[N_VERSIONS - 1];
    const char *asked = key_value(call, K_VERSION);
    if (asked)
        for (size_t i = 0; i < N_VERSIONS; i++)
            if (strcmp(asked, SUPPORTED_VERSIONS[i]) == 0)
                wanted = SUPPORTED_VERSIONS[i];
    buf_t b = {0};
    buf_adds(&b, "{\"cniVersion\": ");
    json_cstring(&b, wanted);
    buf_adds(&b, ", \"supportedVersions\": [");
    for (size_t i = 0; i < N_VERSIONS; i++) {
        if (i)
            buf_adds(&b, ", ");
        json_cstring(&b, SUPPORTED_VERSIONS[i]);
    }
    buf_adds(&b, "]}\n");
    int rc = write_all(1, b.data, b.len) ? 1 : 0;
    free(b.data);
    return rc;
}

/* Read all of stdin (up to MAX_STDIN + 1 bytes). Returns 0, 1 when too large, -1 on error. */
static int read_stdin(buf_t *b)
{
    for (;;) {
        buf_reserve(b, 65536);
        size_t room = b->cap - b->len - 1;
        if (room > (size_t)MAX_STDIN + 1 - b->len)
            room = (size_t)MAX_STDIN + 1 - b->len;
        ssize_t r = read(0, b->data + b->len, room);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EBADF)
                return 0; /* no stdin at all: an empty config */
            return -1;
        }
        if (r == 0)
            return 0;
        b->len += (size_t)r;
        b->data[b->len] = '\0';
        if (b->len > MAX_STDIN)
            return 1;
    }
}

static int has_prefix(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

/* The request body: every CNI_* / METACNI_* variable, and the stdin bytes in base64. */
static void build_body(call_t *call, char **envp)
{
    buf_t *b = &call->body;
    buf_adds(b, "{\"env\": {");
    int first = 1;
    for (char **e = envp; e && *e; e++) {
        if (!has_prefix(*e, "CNI_") && !has_prefix(*e, "METACNI_"))
            continue;
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        if (!first)
            buf_adds(b, ", ");
        first = 0;
        json_string(b, *e, (size_t)(eq - *e));
        buf_adds(b, ": ");
        json_cstring(b, eq + 1);
    }
    buf_adds(b, "}, \"config\": \"");
    base64(b, (const unsigned char *)call->stdin_data.data, call->stdin_data.len);
    buf_adds(b, "\"}");
}

static double env_seconds(const char *name, double fallback)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return fallback;
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || *end || !(d > 0) || d > 86400.0)
        return fallback;
    return d;
}

/* ------------------------------------------------------------------ SHA-256 (FIPS 180-4) */
typedef struct {
    uint32_t h[8];
    unsigned char block[64];
    size_t fill;
    uint64_t total;
} sha256_t;

static const uint32_t SHA256_K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t ror32(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

static void sha256_init(sha256_t *s)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof iv);
    s->fill = 0;
    s->total = 0;
}

static void sha256_block(sha256_t *s, const unsigned char *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5], g = s->h[6],
             h = s->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) + ((e & f) ^ (~e & g)) + SHA256_K[i] + w[i];
        uint32_t t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d;
    s->h[4] += e; s->h[5] += f; s->h[6] += g; s->h[7] += h;
}

static void sha256_update(sha256_t *s, const void *data, size_t n)
{
    const unsigned char *p = data;
    s->total += n;
    while (n) {
        size_t take = 64 - s->fill < n ? 64 - s->fill : n;
        memcpy(s->block + s->fill, p, take);
        s->fill += take;
        p += take;
        n -= take;
        if (s->fill == 64) {
            sha256_block(s, s->block);
            s->fill = 0;
        }
    }
}

/* The digest as 64 lowercase hex digits (and a NUL) in hex. */
static void sha256_hex(sha256_t *s, char hex[65])
{
    uint64_t bits = s->total * 8;
    unsigned char pad[72] = {0x80};
    size_t padlen = (s->fill < 56 ? 56 : 120) - s->fill;
    for (int i = 0; i < 8; i++)
        pad[padlen + (size_t)i] = (unsigned char)(bits >> (56 - 8 * i));
    sha256_update(s, pad, padlen + 8);
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        unsigned char byte = (unsigned char)(s->h[i / 4] >> (24 - 8 * (i % 4)));
        hex[2 * i] = digits[byte >> 4];
        hex[2 * i + 1] = digits[byte & 15];
    }
    hex[64] = '\0';
}

/* The readable part of a file name made from s: [A-Za-z0-9_.-] kept, anything else '_', at most
 * max bytes, "_" when empty. */
static void name_part(buf_t *b, const char *s, size_t max)
{
    size_t n = 0;
    for (; s && s[n] && n < max; n++) {
        char ch = s[n];
        int ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                 ch == '.' || ch == '-';
        buf_addc(b, ok ? ch : '_');
    }
    if (n == 0)
        buf_addc(b, '_');
}

/* The pending-DEL record name of an attachment (metacni.daemon.protocol.record_name says the
 * same): "<container id, at most 64 bytes>.<ifname, at most 16 bytes>.<32 hex>.json", the hex
 * being the start of SHA-256(container id NUL ifname) of the whole values. At most 123 bytes
 * whatever the runtime passes, so the record and its temporary file stay under NAME_MAX, and
 * two attachments never share a record. */
static void record_name(buf_t *b, const char *container_id, const char *ifname)
{
    sha256_t h;
    char hex[65];
    sha256_init(&h);
    sha256_update(&h, container_id ? container_id : "", container_id ? strlen(container_id) : 0);
    sha256_update(&h, "", 1);
    sha256_update(&h, ifname ? ifname : "", ifname ? strlen(ifname) : 0);
    sha256_hex(&h, hex);
    name_part(b, container_id, RECORD_ID_PART);
    buf_addc(b, '.');
    name_part(b, ifname, RECORD_IFNAME_PART);
    buf_addc(b, '.');
    buf_add(b, hex, RECORD_HASH_HEX);
    buf_adds(b, ".json");
}

/* mkdir -p with mode 0700 for the directories it creates. Returns 0 or -1 (errno set). */
static int make_dirs(const char *path)
{
    buf_t p = {0};
    buf_adds(&p, path);
    int rc = 0;
    for (size_t i = 1; i <= p.len && rc == 0; i++) {
        if (i < p.len && p.data[i] != '/')
            continue;
        char saved = p.data[i];
        p.data[i] = '\0';
        if (mkdir(p.data, 0700) && errno != EEXIST)
            rc = -1;
        p.data[i] = saved;
    }
    if (rc == 0) {
        struct stat st;
        if (stat(path, &st)) {
            rc = -1;
        } else if (!S_ISDIR(st.st_mode)) {
            errno = ENOTDIR;
            rc = -1;
        }
    }
    free(p.data);
    return rc;
}

/* Record a DEL the daemon could not take: the exact request body, atomically (tmp file in the
 * same dir, fsync, rename, fsync of the dir), mode 0600. Returns 0, or -1 with a message in why. */
static int record_del(call_t *call, buf_t *where, buf_t *why)
{
    const char *dir = getenv("METACNI_PENDING_DIR");
    buf_t d = {0};
    if (dir && *dir) {
        buf_adds(&d, dir);
    } else {
        const char *cni_dir = key_value(call, K_CNIDIR);
        buf_adds(&d, cni_dir ? cni_dir : DEFAULT_CNI_DIR);
        buf_adds(&d, "/pending-del");
    }
    buf_t name = {0};
    record_name(&name, getenv("CNI_CONTAINERID"), getenv("CNI_IFNAME"));
    buf_printf(where, "%s/%s", d.data, name.data);
    buf_t tmp = {0};
    buf_printf(&tmp, "%s/.%s.%ld.tmp", d.data, name.data, (long)getpid());
    int rc = -1, fd = -1;
    if (make_dirs(d.data)) {
        buf_printf(why, "cannot create %s: %s", d.data, strerror(errno));
        goto out;
    }
    fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        buf_printf(why, "cannot create %s: %s", tmp.data, strerror(errno));
        goto out;
    }
    if (write_all(fd, call->body.data, call->body.len) || fsync(fd)) {
        buf_printf(why, "cannot write %s: %s", tmp.data, strerror(errno));
        goto out;
    }
    if (close(fd)) {
        fd = -1;
        buf_printf(why, "cannot write %s: %s", tmp.data, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp.data, where->data)) {
        buf_printf(why, "cannot rename %s to %s: %s", tmp.data, where->data, strerror(errno));
        goto out;
    }
    int dfd = open(d.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc)
        (void)unlink(tmp.data);
    free(d.data);
    free(name.data);
    free(tmp.data);
    return rc;
}

/* Connect to the daemon. Returns the fd, or -1 with errno set (EAGAIN: timed out). */
static int connect_daemon(const char *path, double timeout)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    /* A unix stream connect waits (up to SO_SNDTIMEO) while the daemon's backlog is full. */
    struct timeval tv = {(time_t)timeout, (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6)};
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    for (;;) {
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
            break;
        if (errno == EINTR)
            continue;
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* Wait until fd is ready for events (or poll was interrupted). Returns 0, or -2 when the
 * deadline has passed. */
static int wait_fd(int fd, short events, double deadline)
{
    struct pollfd pfd = {fd, events, 0};
    int left = ms_left(deadline);
    if (left == 0 || (poll(&pfd, 1, left) == 0 && ms_left(deadline) == 0))
        return -2;
    return 0;
}

/* Send all of p until deadline. Returns 0, -1 on a socket error (errno), -2 on timeout. */
static int send_all(int fd, const char *p, size_t n, double deadline)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w >= 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (wait_fd(fd, POLLOUT, deadline))
            return -2;
    }
    return 0;
}

/* Read until EOF, MAX_ANSWER or deadline. Returns 0, -1 on a socket error, -2 on timeout,
 * -3 when the answer is too large. */
static int recv_all(int fd, buf_t *b, double deadline)
{
    for (;;) {
        buf_reserve(b, 65536);
        ssize_t r = recv(fd, b->data + b->len, b->cap - b->len - 1, 0);
        if (r > 0) {
            b->len += (size_t)r;
            b->data[b->len] = '\0';
            if (b->len > MAX_ANSWER)
                return -3;
            continue;
        }
        if (r == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (wait_fd(fd, POLLIN, deadline))
            return -2;
    }
}

typedef struct {
    int status;
    const char *protocol; /* NULL when the header is missing */
    size_t protocol_len;
    const char *body;
    size_t body_len;
} answer_t;

static int ieq(const char *a, size_t n, const char *b)
{
    if (strlen(b) != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = (char)(y - 'A' + 'a');
        if (x != y)
            return 0;
    }
    return 1;
}

/* Decode a chunked body in place. Returns the decoded length, or -1 when malformed. */
static long dechunk(char *p, size_t n)
{
    size_t in = 0, out = 0;
    for (;;) {
        char *eol = memmem(p + in, n - in, "\r\n", 2);
        if (!eol)
            return -1;
        size_t size = 0;
        int digits = 0;
        for (char *h = p + in; h < eol; h++, digits++) {
            int v;
            if (*h >= '0' && *h <= '9') v = *h - '0';
            else if (*h >= 'a' && *h <= 'f') v = *h - 'a' + 10;
            else if (*h >= 'A' && *h <= 'F') v = *h - 'A' + 10;
            else break; /* chunk extensions */
            if (size > MAX_ANSWER)
                return -1;
            size = size * 16 + (size_t)v;
        }
        if (!digits)
            return -1;
        in = (size_t)(eol - p) + 2;
        if (size == 0)
            return (long)out;
        if (n - in < size + 2 || memcmp(p + in + size, "\r\n", 2) != 0)
            return -1;
        memmove(p + out, p + in, size);
        out += size;
        in += size + 2;
    }
}

/* Parse an HTTP/1.x answer held entirely in b. Returns 0, or -1 when it is not one. */
static int parse_answer(buf_t *b, answer_t *a)
{
    memset(a, 0, sizeof *a);
    char *head_end = memmem(b->data, b->len, "\r\n\r\n", 4);
    if (!head_end || b->len < 12 || memcmp(b->data, "HTTP/1.", 7) != 0 || b->data[8] != ' ')
        return -1;
    char *p = b->data + 9;
    if (p[0] < '1' || p[0] > '5' || p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9')
        return -1;
    a->status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    char *line = memmem(b->data, (size_t)(head_end - b->data) + 2, "\r\n", 2) + 2;
    long content_length = -1;
    int chunked = 0;
    while (line < head_end + 2) {
        char *eol = memmem(line, (size_t)(head_end + 2 - line), "\r\n", 2);
        char *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon) {
            char *v = colon + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            size_t nlen = (size_t)(colon - line);
            if (ieq(line, nlen, "metacni-protocol")) {
                a->protocol = v;
                a->protocol_len = (size_t)(ve - v);
            } else if (ieq(line, nlen, "content-length")) {
                content_length = 0;
                for (char *d = v; d < ve; d++) {
                    if (*d < '0' || *d > '9' || content_length > MAX_ANSWER)
                        return -1;
                    content_length = content_length * 10 + (*d - '0');
                }
            } else if (ieq(line, nlen, "transfer-encoding") && ieq(v, (size_t)(ve - v), "chunked")) {
                chunked = 1;
            }
        }
        line = eol + 2;
    }
    a->body = head_end + 4;
    size_t have = b->len - (size_t)(a->body - b->data);
    if (chunked) {
        long n = dechunk(head_end + 4, have);
        if (n < 0)
            return -1;
        a->body_len = (size_t)n;
    } else if (content_length >= 0) {
        if ((size_t)content_length > have)
            return -1; /* the connection closed early */
        a->body_len = (size_t)content_length;
    } else {
        a->body_len = have;
    }
    return 0;
}

/* A DEL the daemon cannot carry out now is recorded for it (exit 0); a record that cannot be
 * written is code 11 with ``msg``. Replaying a DEL is harmless: DEL is idempotent. */
static int record_instead(call_t *call, const char *msg, buf_t *details)
{
    buf_t where = {0}, why = {0};
    int rc;
    if (record_del(call, &where, &why) == 0) {
        logmsg("%s (%s); DEL recorded in %s, the daemon carries it out (at its start, then every GC period)", msg,
               details->data,
               where.data);
        rc = 0;
    } else {
        buf_printf(details, "; and the DEL could not be recorded: %s", why.data);
        rc = cni_error(call, TRY_AGAIN_LATER, msg, details->data);
    }
    free(where.data);
    free(why.data);
    return rc;
}

static int daemon_down(call_t *call, const char *path, int err)
{
    buf_t details = {0};
    buf_printf(&details, "cannot connect to %s: %s", path, err == EAGAIN ? "connect timed out" : strerror(err));
    int rc;
    if (strcmp(call->command, "DEL") == 0)
        rc = record_instead(call, "metacni daemon is not running", &details);
    else
        rc = cni_error(call, TRY_AGAIN_LATER, "metacni daemon is not running", details.data);
    free(details.data);
    return rc;
}

static int forward(call_t *call, char **envp)
{
    const char *path = getenv("METACNI_SOCKET");
    if (!path || !*path)
        path = key_value(call, K_SOCKET);
    if (!path)
        path = DEFAULT_SOCKET;
    int is_del = strcmp(call->command, "DEL") == 0;
    double timeout = env_seconds("METACNI_TIMEOUT", is_del ? 30.0 : 120.0);
    double connect_timeout = env_seconds("METACNI_CONNECT_TIMEOUT", 5.0);
    build_body(call, envp);

    int fd = connect_daemon(path, connect_timeout);
    if (fd < 0) {
        int err = errno;
        if (err == ENOENT || err == ECONNREFUSED || err == EAGAIN || err == ETIMEDOUT)
            return daemon_down(call, path, err);
        buf_t details = {0};
        buf_printf(&details, "cannot connect to %s: %s", path, strerror(err));
        int rc = cni_error(call, TRY_AGAIN_LATER, "metacni daemon is not reachable", details.data);
        free(details.data);
        return rc;
    }
    double deadline = now() + timeout;
    buf_t req = {0};
    buf_printf(&req,
               "POST /cni HTTP/1.1\r\nHost: metacni\r\nContent-Type: application/json\r\n"
               "Content-Length: %zu\r\nMetacni-Protocol: " PROTOCOL "\r\nConnection: close\r\n\r\n",
               call->body.len);
    buf_add(&req, call->body.data, call->body.len);
    /* No shutdown(SHUT_WR) after the request: Content-Length delimits it, and the daemon takes
     * a half-closed connection for a client that went away. */
    int sent = send_all(fd, req.data, req.len, deadline);
    free(req.data);
    /* Even when sending failed, the daemon may have answered (e.g. 413 before reading). */
    buf_t ans = {0};
    int got = sent == -2 ? -2 : recv_all(fd, &ans, deadline);
    int recv_errno = errno;
    close(fd);
    buf_t details = {0};
    answer_t a;
    int rc;
    if (got == -2) {
        buf_printf(&details, "%s got no answer within %gs on %s (METACNI_TIMEOUT); not re-sent", call->command,
                   timeout, path);
        rc = cni_error(call, TRY_AGAIN_LATER, "metacni daemon did not answer in time", details.data);
    } else if (got == -3) {
        buf_printf(&details, "the answer on %s exceeds %d bytes", path, MAX_ANSWER);
        rc = cni_error(call, TRY_AGAIN_LATER, "metacni daemon answer too large", details.data);
    } else if (parse_answer(&ans, &a)) {
        const char *what = got == -1 ? strerror(recv_errno)
                           : ans.len  ? "incomplete or malformed HTTP answer"
                                      : "connection closed without an answer";
        if (is_del) { /* a stopping daemon: the next one carries it out (a replay is harmless) */
            buf_printf(&details, "DEL on %s: %s", path, what);
            rc = record_instead(call, "metacni daemon went away during the call", &details);
        } else {
            buf_printf(&details, "%s on %s: %s; not re-sent", call->command, path, what);
            rc = cni_error(call, TRY_AGAIN_LATER, "metacni daemon went away during the call", details.data);
        }
    } else if (is_del && a.status == 503) {
        /* unavailable (shutting down, or its queue is full): recorded, carried out by the next
         * replay pass (at the daemon's start and every GC period) rather than failed */
        buf_printf(&details, "DEL on %s: HTTP 503 %.*s", path, (int)(a.body_len > 200 ? 200 : a.body_len),
                   a.body_len ? a.body : "");
        rc = record_instead(call, "metacni daemon is unavailable", &details);
    } else if (!a.protocol || a.protocol_len != 1 || a.protocol[0] != PROTOCOL[0]) {
        buf_t msg = {0};
        buf_adds(&msg, "daemon speaks protocol ");
        if (a.protocol)
            buf_add(&msg, a.protocol, a.protocol_len > 64 ? 64 : a.protocol_len);
        else
            buf_adds(&msg, "unknown (no Metacni-Protocol header)");
        buf_adds(&msg, ", shim speaks " PROTOCOL);
        buf_printf(&details, "HTTP %d from %s; upgrade the shim or the daemon so both speak protocol " PROTOCOL,
                   a.status, path);
        rc = cni_error(call, TRY_AGAIN_LATER, msg.data, details.data);
        free(msg.data);
    } else if (a.body_len == 0 && a.status != 200) {
        buf_printf(&details, "%s on %s: HTTP %d with an empty body", call->command, path, a.status);
        rc = cni_error(call, TRY_AGAIN_LATER, "metacni daemon failed without an answer", details.data);
    } else {
        rc = a.status == 200 ? 0 : 1;
        if (write_all(1, a.body, a.body_len))
            rc = 1;
    }
    free(details.data);
    free(ans.data);
    return rc;
}

/* The call, start to end; returns the exit status. */
static int run(call_t *call, char **envp)
{
    call->command = getenv("CNI_COMMAND");
    if (!call->command || !*call->command) {
        logmsg("a CNI plugin: forwards CNI calls to the metacni daemon over HTTP on a unix socket "
               "(default %s, protocol " PROTOCOL ")", DEFAULT_SOCKET);
        return cni_error(call, 4, "required env variables [CNI_COMMAND] missing",
                         "metacni-shim is a CNI plugin; run it with the CNI_* environment and a config on stdin");
    }
    int is_version = strcmp(call->command, "VERSION") == 0;
    int r = is_version && isatty(0) ? 0 : read_stdin(&call->stdin_data);
    int read_errno = errno;
    if (r >= 0)
        (void)scan_top_level(call->stdin_data.data ? call->stdin_data.data : "", call->stdin_data.len, call->keys, 3);
    buf_t details = {0};
    int rc;
    if (r < 0) {
        buf_printf(&details, "reading stdin: %s", strerror(read_errno));
        rc = cni_error(call, TRY_AGAIN_LATER, "cannot read the network configuration", details.data);
    } else if (r == 1) {
        buf_printf(&details, "the network configuration on stdin exceeds %d bytes", MAX_STDIN);
        rc = cni_error(call, INVALID_CONFIG, "config too large", details.data);
    } else if (is_version) {
        rc = version_answer(call);
    } else {
        rc = forward(call, envp);
    }
    free(details.data);
    return rc;
}

#ifndef METACNI_SHIM_MAIN
#define METACNI_SHIM_MAIN main
#endif

int METACNI_SHIM_MAIN(int argc, char **argv, char **envp)
{
    (void)argc;
    (void)argv;
    call_t call;
    memset(&call, 0, sizeof call);
    call.keys[K_SOCKET].name = "daemonSocket";
    call.keys[K_CNIDIR].name = "cniDir";
    call.keys[K_VERSION].name = "cniVersion";
    int rc = run(&call, envp);
    free(call.stdin_data.data);
    free(call.body.data);
    for (size_t i = 0; i < sizeof call.keys / sizeof call.keys[0]; i++)
        free(call.keys[i].value.data);
    return rc;
}
