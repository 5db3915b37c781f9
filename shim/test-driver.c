/*
 * Test driver for tests/shim/test_shim.py: exposes the shim's JSON key scan, JSON string escaping and
 * base64 encoding (the same code, included) on stdin/stdout so that they can be compared with
 * Python's json and base64 under hypothesis. Not installed.
 *
 *   test-driver scan KEY...   stdin: a document; prints per key "KEY found HEX" or "KEY absent",
 *                             then "rc N" (0: a well-formed JSON object)
 *   test-driver escape        stdin: bytes; prints them as a JSON string literal
 *   test-driver base64        stdin: bytes; prints their base64
 *   test-driver name          stdin: container id, NUL, ifname; prints the pending-DEL record name
 */
#define METACNI_SHIM_MAIN metacni_shim_main
#include "metacni-shim.c"

static void read_all(buf_t *b)
{
    for (;;) {
        buf_reserve(b, 65536);
        ssize_t r = read(0, b->data + b->len, b->cap - b->len - 1);
        if (r <= 0)
            break;
        b->len += (size_t)r;
        b->data[b->len] = '\0';
    }
    if (b->data)
        b->data[b->len] = '\0';
}

int main(int argc, char **argv)
{
    buf_t in = {0}, out = {0};
    read_all(&in);
    if (argc >= 2 && strcmp(argv[1], "scan") == 0) {
        size_t n = (size_t)(argc - 2);
        scan_key_t *keys = calloc(n + 1, sizeof *keys);
        if (!keys)
            die_oom();
        for (size_t i = 0; i < n; i++)
            keys[i].name = argv[i + 2];
        int rc = scan_top_level(in.data ? in.data : "", in.len, keys, n);
        for (size_t i = 0; i < n; i++) {
            buf_adds(&out, keys[i].name);
            if (keys[i].found) {
                buf_adds(&out, " found ");
                for (size_t j = 0; j < keys[i].value.len; j++)
                    buf_printf(&out, "%02x", (unsigned char)keys[i].value.data[j]);
            } else {
                buf_adds(&out, " absent");
            }
            buf_addc(&out, '\n');
            free(keys[i].value.data);
        }
        buf_printf(&out, "rc %d\n", rc);
        free(keys);
    } else if (argc == 2 && strcmp(argv[1], "escape") == 0) {
        json_string(&out, in.data ? in.data : "", in.len);
    } else if (argc == 2 && strcmp(argv[1], "base64") == 0) {
        base64(&out, (const unsigned char *)(in.data ? in.data : ""), in.len);
    } else if (argc == 2 && strcmp(argv[1], "name") == 0) {
        const char *cid = in.data ? in.data : "";
        size_t cid_len = strlen(cid);
        record_name(&out, cid, cid_len < in.len ? cid + cid_len + 1 : "");
    } else {
        fprintf(stderr, "usage: test-driver scan KEY... | escape | base64 | name\n");
        return 2;
    }
    (void)write_all(1, out.data ? out.data : "", out.len);
    free(in.data);
    free(out.data);
    return 0;
}
