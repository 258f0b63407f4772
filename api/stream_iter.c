/*
 * stream_iter.c -- shard iterators for DynamoDB Streams (see stream_iter.h).
 *
 * Iterator text:
 *
 *   <stream_arn> "|1|" <blob>
 *
 *   stream_arn  the ARN verbatim, 1..1099 bytes (it may even contain '|':
 *               the parser splits at the LAST '|', and base64url has none)
 *   "1"         text format version; anything else is invalid
 *   blob        base64url (RFC 4648 section 5: A-Z a-z 0-9 - _), no
 *               padding, canonical: a final character whose unused low bits
 *               are not zero is refused, so each payload has exactly one
 *               spelling and no character of a valid iterator can be
 *               changed without changing the bytes the MAC covers
 *
 * The ARN is not repeated inside the blob (that would double the longest
 * iterator); the MAC covers it instead.
 *
 * Payload (the decoded blob), all integers big-endian:
 *
 *   offset  size  field
 *   0       1     version, 0x01 (TRB__ITER_VERSION); others are refused
 *   1       1     n = length of shard_id, 1..79
 *   2       n     shard_id bytes, no NUL
 *   2+n     8     next_lsn   (uint64)
 *   10+n    8     issued_us  (int64, two's complement)
 *   18+n    32    mac
 *
 *   total 50+n bytes (51..129), so the blob is 68..172 characters and the
 *   longest iterator 1099 + 3 + 172 = 1274 characters, under TRB_ITER_MAX.
 *
 *   mac = HMAC-SHA256(key, "tributary-iter" 0x00
 *                          || arn_len (uint16) || stream_arn
 *                          || payload[0 .. 18+n))
 *
 * The tag keeps the server key from ever signing anything that could be
 * mistaken for an iterator in another use; the ARN's length prefix keeps the
 * ARN/payload boundary unambiguous. An iterator is valid when: the shape
 * and lengths above hold, the version is known, and the MAC verifies
 * (CRYPTO_memcmp), in that order; only then are the fields believed and the
 * issue time compared with the clock.
 *
 * Key file: exactly TRB_ITER_KEY_LEN (32) raw random bytes, mode 0600, no
 * header (a file of any other size is corrupt). It is created once, by the
 * durable-replace recipe, and never rewritten; deleting it invalidates every
 * iterator handed out.
 */
#include "api/stream_iter.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/sysio.h"

#define TRB__ITER_VERSION 0x01
#define TRB__ITER_TEXT_SEP "|1|"
#define TRB__ITER_MAC_LEN 32
#define TRB__ITER_TAG "tributary-iter" /* hashed with its NUL */

/* Payload offsets for a shard id of n bytes. */
#define PL_OFF_VERSION 0
#define PL_OFF_SHARD_LEN 1
#define PL_OFF_SHARD 2
#define PL_OFF_LSN(n) (2 + (n))
#define PL_OFF_ISSUED(n) (10 + (n))
#define PL_OFF_MAC(n) (18 + (n))
#define PL_LEN(n) (PL_OFF_MAC(n) + TRB__ITER_MAC_LEN)

#define SHARD_MAX (TRB_ITER_SHARD_SIZE - 1)
#define ARN_MAX (TRB_ITER_ARN_SIZE - 1)
#define PL_MIN PL_LEN(1)
#define PL_MAX PL_LEN(SHARD_MAX)

/* base64url length of n bytes, unpadded. */
#define B64_LEN(n) ((n) / 3 * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))
#define B64_MIN B64_LEN(PL_MIN)
#define B64_MAX B64_LEN(PL_MAX)

/* The MAC input: tag, ARN length, ARN, payload before the MAC. */
#define MAC_IN_MAX (sizeof TRB__ITER_TAG + 2 + ARN_MAX + PL_OFF_MAC(SHARD_MAX))

_Static_assert(SHARD_MAX <= 255, "shard id length must fit the one-byte length field");
_Static_assert(ARN_MAX <= 65535, "ARN length must fit the two-byte length in the MAC input");
_Static_assert(ARN_MAX + 3 + B64_MAX <= TRB_ITER_MAX, "the longest iterator must fit TRB_ITER_MAX");

#define INVALID_MSG "Invalid ShardIterator"

struct trb_iter_key {
  unsigned char k[TRB_ITER_KEY_LEN];
};

/* ---- key ---- */

trb_iter_key *trb_iter_key_from_bytes(const unsigned char k[TRB_ITER_KEY_LEN]) {
  if (!k) return NULL;
  trb_iter_key *key = malloc(sizeof *key);
  if (key) memcpy(key->k, k, TRB_ITER_KEY_LEN);
  return key;
}

void trb_iter_key_destroy(trb_iter_key *k) {
  if (!k) return;
  OPENSSL_cleanse(k->k, sizeof k->k);
  free(k);
}

/* Reads exactly the key from an open key file. */
static trb_err key_read(int fd, const char *path, unsigned char k[TRB_ITER_KEY_LEN],
                        trb_status *st) {
  struct stat sb;
  if (fstat(fd, &sb) < 0)
    return trb_status_set(st, TRB_EIO, "shard iterator key file %s: fstat: %s", path,
                          strerror(errno));
  if (!S_ISREG(sb.st_mode))
    return trb_status_set(st, TRB_EIO, "shard iterator key file %s: not a regular file", path);
  if (sb.st_size != TRB_ITER_KEY_LEN)
    return trb_status_set(st, TRB_ECORRUPT,
                          "shard iterator key file %s: %lld bytes, expected %d", path,
                          (long long)sb.st_size, TRB_ITER_KEY_LEN);
  /* One byte more than the key, to notice a file that grew since fstat. */
  unsigned char buf[TRB_ITER_KEY_LEN + 1];
  size_t got = 0;
  while (got < sizeof buf) {
    ssize_t r = read(fd, buf + got, sizeof buf - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      OPENSSL_cleanse(buf, sizeof buf);
      return trb_status_set(st, TRB_EIO, "shard iterator key file %s: read: %s", path,
                            strerror(e));
    }
    if (r == 0) break;
    got += (size_t)r;
  }
  trb_err rc = TRB_OK;
  if (got != TRB_ITER_KEY_LEN)
    rc = trb_status_set(st, TRB_ECORRUPT, "shard iterator key file %s: %zu bytes, expected %d",
                        path, got, TRB_ITER_KEY_LEN);
  else
    memcpy(k, buf, TRB_ITER_KEY_LEN);
  OPENSSL_cleanse(buf, sizeof buf);
  return rc;
}

/*
 * Creates the key file by durable replace. util/sysio's
 * trb_sys_write_file_durable would do, but it creates with mode 0644 and a
 * secret wants 0600, so the recipe is spelled out here over the same seam.
 * A stale path.tmp (a crash mid-create) is removed first, and the temporary
 * is opened O_EXCL so the mode we ask for is the mode it has.
 */
static trb_err key_create(const char *path, unsigned char k[TRB_ITER_KEY_LEN], trb_status *st) {
  trb_err rc = TRB_OK;
  size_t plen = strlen(path);
  char *tmp = malloc(plen + sizeof ".tmp");
  char *dcopy = strdup(path);
  int fd = -1, tmp_made = 0;
  if (!tmp || !dcopy) {
    rc = trb_status_set(st, TRB_ENOMEM, "shard iterator key file %s: out of memory", path);
    goto done;
  }
  memcpy(tmp, path, plen);
  memcpy(tmp + plen, ".tmp", sizeof ".tmp");
  if (RAND_bytes(k, TRB_ITER_KEY_LEN) != 1) {
    rc = trb_status_set(st, TRB_EINTERNAL, "shard iterator key file %s: RAND_bytes failed", path);
    goto done;
  }
  if (trb_sys.unlink(tmp) < 0 && errno != ENOENT) {
    rc = trb_status_set(st, TRB_EIO, "shard iterator key file %s: cannot remove stale %s: %s",
                        path, tmp, strerror(errno));
    goto done;
  }
  fd = trb_sys.open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) {
    rc = trb_status_set(st, TRB_EIO, "shard iterator key file %s: cannot create %s: %s", path,
                        tmp, strerror(errno));
    goto done;
  }
  tmp_made = 1;
  if (trb_sys_pwrite_all(fd, k, TRB_ITER_KEY_LEN, 0) < 0) {
    rc = trb_status_set(st, TRB_EIO, "shard iterator key file %s: write %s: %s", path, tmp,
                        strerror(errno));
    goto done;
  }
  if (trb_sys.fsync(fd) < 0) {
    rc = trb_status_set(st, TRB_EIO, "shard iterator key file %s: fsync %s: %s", path, tmp,
                        strerror(errno));
    goto done;
  }
  int crc = close(fd);
  fd = -1;
  if (crc < 0) {
    rc = trb_status_set(st, TRB_EIO, "shard iterator key file %s: close %s: %s", path, tmp,
                        strerror(errno));
    goto done;
  }
  if (trb_sys.rename(tmp, path) < 0) {
    rc = trb_status_set(st, TRB_EIO, "shard iterator key file %s: rename from %s: %s", path, tmp,
                        strerror(errno));
    goto done;
  }
  tmp_made = 0;
  /* The file is complete and synced; only its name may not be durable yet.
   * Report it: a server that starts without knowing its key will persist
   * could hand out iterators a restart would invalidate. */
  const char *dir = dirname(dcopy);
  if (trb_sys_fsync_dir(dir) < 0) {
    rc = trb_status_set(st, TRB_EIO, "shard iterator key file %s: fsync directory %s: %s", path,
                        dir, strerror(errno));
    goto done;
  }
done:
  if (fd >= 0) close(fd);
  if (tmp_made) trb_sys.unlink(tmp);
  if (rc) OPENSSL_cleanse(k, TRB_ITER_KEY_LEN);
  free(dcopy);
  free(tmp);
  return rc;
}

trb_err trb_iter_key_load(const char *path, trb_iter_key **out, trb_status *st) {
  if (!path || !*path || !out)
    return trb_status_set(st, TRB_EINVAL, "trb_iter_key_load: path and out are required");
  unsigned char k[TRB_ITER_KEY_LEN];
  trb_err rc;
  int fd = trb_sys.open(path, O_RDONLY, 0);
  if (fd >= 0) {
    rc = key_read(fd, path, k, st);
    close(fd);
  } else if (errno == ENOENT) {
    rc = key_create(path, k, st);
  } else {
    rc = trb_status_set(st, TRB_EIO, "shard iterator key file %s: open: %s", path,
                        strerror(errno));
  }
  if (!rc) {
    trb_iter_key *key = trb_iter_key_from_bytes(k);
    if (key)
      *out = key;
    else
      rc = trb_status_set(st, TRB_ENOMEM, "shard iterator key file %s: out of memory", path);
  }
  OPENSSL_cleanse(k, sizeof k);
  return rc;
}

/* ---- base64url ---- */

static const char b64u_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64u_val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

/* Writes B64_LEN(n) characters (no NUL). */
static void b64u_encode(const unsigned char *p, size_t n, char *out) {
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    *out++ = b64u_alpha[v >> 18];
    *out++ = b64u_alpha[(v >> 12) & 63];
    *out++ = b64u_alpha[(v >> 6) & 63];
    *out++ = b64u_alpha[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)p[i] << 16;
    *out++ = b64u_alpha[v >> 18];
    *out++ = b64u_alpha[(v >> 12) & 63];
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
    *out++ = b64u_alpha[v >> 18];
    *out++ = b64u_alpha[(v >> 12) & 63];
    *out++ = b64u_alpha[(v >> 6) & 63];
  }
}

/* Strict decode: alphabet only, no padding, length not 1 mod 4, unused low
 * bits of the last character zero. 0 and *outn, or -1. */
static int b64u_decode(const char *s, size_t n, unsigned char *out, size_t cap, size_t *outn) {
  if (n % 4 == 1) return -1;
  uint32_t acc = 0;
  unsigned bits = 0;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64u_val((unsigned char)s[i]);
    if (v < 0) return -1;
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (o == cap) return -1;
      out[o++] = (unsigned char)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  if (acc) return -1;
  *outn = o;
  return 0;
}

/* ---- payload ---- */

static void put_u64(unsigned char *p, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = (unsigned char)v;
    v >>= 8;
  }
}

static uint64_t get_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

/* mac over the tag, the ARN and the first mlen payload bytes. */
static int iter_mac(const trb_iter_key *k, const char *arn, size_t alen, const unsigned char *pl,
                    size_t mlen, unsigned char mac[TRB__ITER_MAC_LEN]) {
  unsigned char in[MAC_IN_MAX];
  size_t n = 0;
  memcpy(in, TRB__ITER_TAG, sizeof TRB__ITER_TAG);
  n += sizeof TRB__ITER_TAG;
  in[n++] = (unsigned char)(alen >> 8);
  in[n++] = (unsigned char)alen;
  memcpy(in + n, arn, alen);
  n += alen;
  memcpy(in + n, pl, mlen);
  n += mlen;
  unsigned int maclen = 0;
  if (!HMAC(EVP_sha256(), k->k, TRB_ITER_KEY_LEN, in, n, mac, &maclen) ||
      maclen != TRB__ITER_MAC_LEN)
    return -1;
  return 0;
}

trb_err trb_iter_encode(const trb_iter_key *k, const trb_iter *it, char *out, trb_status *st) {
  if (!out) return trb_status_set(st, TRB_EINVAL, "trb_iter_encode: out is required");
  out[0] = 0;
  if (!k || !it)
    return trb_status_set(st, TRB_EINVAL, "trb_iter_encode: key and iterator are required");
  size_t alen = strnlen(it->stream_arn, TRB_ITER_ARN_SIZE);
  if (alen == 0 || alen > ARN_MAX)
    return trb_status_set(st, TRB_EINVAL, "shard iterator: stream ARN must be 1..%d characters",
                          ARN_MAX);
  size_t slen = strnlen(it->shard_id, TRB_ITER_SHARD_SIZE);
  if (slen == 0 || slen > SHARD_MAX)
    return trb_status_set(st, TRB_EINVAL, "shard iterator: shard id must be 1..%d characters",
                          SHARD_MAX);

  unsigned char pl[PL_MAX];
  pl[PL_OFF_VERSION] = TRB__ITER_VERSION;
  pl[PL_OFF_SHARD_LEN] = (unsigned char)slen;
  memcpy(pl + PL_OFF_SHARD, it->shard_id, slen);
  put_u64(pl + PL_OFF_LSN(slen), it->next_lsn);
  put_u64(pl + PL_OFF_ISSUED(slen), (uint64_t)it->issued_us);
  if (iter_mac(k, it->stream_arn, alen, pl, PL_OFF_MAC(slen), pl + PL_OFF_MAC(slen)))
    return trb_status_set(st, TRB_EINTERNAL, "shard iterator: HMAC-SHA256 failed");

  size_t n = PL_LEN(slen);
  size_t sep = sizeof TRB__ITER_TEXT_SEP - 1;
  char *p = out;
  memcpy(p, it->stream_arn, alen);
  p += alen;
  memcpy(p, TRB__ITER_TEXT_SEP, sep);
  p += sep;
  b64u_encode(pl, n, p);
  p += B64_LEN(n);
  *p = 0;
  return TRB_OK;
}

/* ---- decode ---- */

/* "YYYY-MM-DDTHH:MM:SS.mmmZ", or the raw microseconds when the year does
 * not fit four digits. */
static void iso_of_us(int64_t us, char *out, size_t cap) {
  int64_t s = us / 1000000, r = us % 1000000;
  if (r < 0) {
    r += 1000000;
    s--;
  }
  time_t t = (time_t)s;
  struct tm tm;
  if (!gmtime_r(&t, &tm) || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900) {
    snprintf(out, cap, "%" PRId64 "us", us);
    return;
  }
  snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(r / 1000));
}

static trb_err invalid(trb_status *st) { return trb_status_set(st, TRB_EINVAL, INVALID_MSG); }

trb_err trb_iter_decode(const trb_iter_key *k, const char *text, int64_t now_us, trb_iter *out,
                        trb_status *st) {
  if (!out) return trb_status_set(st, TRB_EINVAL, "trb_iter_decode: out is required");
  memset(out, 0, sizeof *out);
  if (!k) return trb_status_set(st, TRB_EINVAL, "trb_iter_decode: key is required");
  if (!text) return invalid(st);

  /* Shape: <arn>|1|<blob>, split at the last '|'. */
  size_t len = strnlen(text, TRB_ITER_MAX + 1);
  if (len > TRB_ITER_MAX) return invalid(st);
  const char *bar = memrchr(text, '|', len);
  if (!bar) return invalid(st);
  size_t p = (size_t)(bar - text);
  if (p < 3 || text[p - 1] != '1' || text[p - 2] != '|') return invalid(st);
  size_t alen = p - 2;
  if (alen > ARN_MAX) return invalid(st);
  const char *blob = bar + 1;
  size_t blen = len - p - 1;
  if (blen < B64_MIN || blen > B64_MAX) return invalid(st);

  /* Payload: lengths and version, then the MAC, before any field is used. */
  unsigned char pl[PL_MAX];
  size_t n = 0;
  if (b64u_decode(blob, blen, pl, sizeof pl, &n)) return invalid(st);
  if (n < PL_MIN || pl[PL_OFF_VERSION] != TRB__ITER_VERSION) return invalid(st);
  size_t slen = pl[PL_OFF_SHARD_LEN];
  if (slen < 1 || slen > SHARD_MAX || n != PL_LEN(slen)) return invalid(st);
  unsigned char mac[TRB__ITER_MAC_LEN];
  if (iter_mac(k, text, alen, pl, PL_OFF_MAC(slen), mac))
    return trb_status_set(st, TRB_EINTERNAL, "shard iterator: HMAC-SHA256 failed");
  if (CRYPTO_memcmp(mac, pl + PL_OFF_MAC(slen), TRB__ITER_MAC_LEN)) return invalid(st);
  /* Authentic, so written by trb_iter_encode, which never puts a NUL in a
   * shard id; checked anyway so a NUL can never shorten one silently. */
  if (memchr(pl + PL_OFF_SHARD, 0, slen)) return invalid(st);

  trb_iter it;
  memset(&it, 0, sizeof it);
  memcpy(it.stream_arn, text, alen);
  memcpy(it.shard_id, pl + PL_OFF_SHARD, slen);
  it.next_lsn = get_u64(pl + PL_OFF_LSN(slen));
  it.issued_us = (int64_t)get_u64(pl + PL_OFF_ISSUED(slen));

  /* age = now - issued, saturated: on overflow the true difference has the
   * sign of now_us - issued_us, and its magnitude exceeds both limits. */
  int64_t age;
  if (__builtin_sub_overflow(now_us, it.issued_us, &age))
    age = now_us > it.issued_us ? INT64_MAX : INT64_MIN;
  if (age < -TRB_ITER_FUTURE_US) return invalid(st);
  if (age > TRB_ITER_TTL_US) {
    char issued[96], now[96];
    iso_of_us(it.issued_us, issued, sizeof issued);
    iso_of_us(now_us, now, sizeof now);
    *out = it;
    return trb_status_set(st, TRB_ETIMEDOUT,
                          "Iterator expired. The iterator was created at time %s while right now "
                          "it's %s. The iterator is valid for 15 minutes.",
                          issued, now);
  }
  *out = it;
  return TRB_OK;
}
