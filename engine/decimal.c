/*
 * decimal.c -- DynamoDB numbers (see decimal.h): parsing, canonical text,
 * comparison, exact add/sub, DynamoDB's size formula, and two byte
 * encodings. No floating point anywhere.
 *
 * Notation: a nonzero canonical number has d significant digits (1..38),
 * coef without trailing zeros, exp, and the adjusted exponent
 * adj = exp + d - 1 in [-130, 125] (the exponent of its first digit).
 *
 * ---- Ordered encoding (trb_dec_encode_ordered) ----
 * memcmp order of encodings == numeric order; self-delimiting.
 *
 *   zero:      0x02                                      (1 byte)
 *   positive:  0x03 | E | P1 P2 ... Pk                   (2 + k bytes)
 *   negative:  0x01 | ~E | ~P1 ~P2 ... ~Pk               (2 + k bytes)
 *
 *   E  = adj + 130, one byte (the range [-130, 125] is exactly 0..255).
 *   The significant digits, left-padded with nothing and right-padded with
 *   one 0 if d is odd, are split into k = ceil(d/2) base-100 pairs
 *   c1..ck (c1 >= 10 since the first digit is nonzero; ck != 0 since the
 *   last digit is nonzero). Pi = 2*ci + 1 for i < k and Pk = 2*ck, so
 *   every byte is <= 199, the last byte is the only even one (that is the
 *   terminator), and a shorter digit string that is a prefix of a longer
 *   one sorts first (at the first pair where one ends, 2c < 2c + 1): 1.2 <
 *   1.23. For negatives every byte after the class byte is complemented
 *   (~x = 255 - x), which reverses the order of magnitudes: -1.23 < -1.2.
 *   A prefix can never decide the order because parity marks the last
 *   byte (even for positives, odd for negatives): two encodings of
 *   different numbers differ at or before the shorter one's last byte.
 *   Higher adj sorts later for positives (larger magnitude); for equal adj
 *   the digit strings compare as decimal fractions.
 *   Maximum length: 2 + 19 = 21 bytes.
 *
 * ---- Compact encoding (trb_dec_encode, used by the item codec) ----
 * The same bytes as the ordered encoding: it is already about one byte
 * per two digits plus two, which is as small as a binary coefficient plus
 * an exponent would be. trb_dec_decode accepts only canonical values: a
 * known class byte, pair bytes <= 199, exactly one terminator (the last
 * byte), a nonzero first digit, a nonzero last digit, at most 19 pairs.
 */
#include "engine/decimal.h"

#include <string.h>

#define POW10_COUNT 39 /* 10^0 .. 10^38 */

static const char MSG_OVERFLOW[] =
    "Number overflow. Attempting to store a number with magnitude larger than "
    "supported range";
static const char MSG_UNDERFLOW[] =
    "Number underflow. Attempting to store a number with magnitude smaller "
    "than supported range";
static const char MSG_DIGITS[] =
    "Attempting to store more than 38 significant digits in a Number";

/* 10^0 .. 10^38 as constant expressions (10^19 still fits a uint64_t). */
static const unsigned __int128 pow10_tab[POW10_COUNT] = {
  (unsigned __int128)1ULL,
  (unsigned __int128)10ULL,
  (unsigned __int128)100ULL,
  (unsigned __int128)1000ULL,
  (unsigned __int128)10000ULL,
  (unsigned __int128)100000ULL,
  (unsigned __int128)1000000ULL,
  (unsigned __int128)10000000ULL,
  (unsigned __int128)100000000ULL,
  (unsigned __int128)1000000000ULL,
  (unsigned __int128)10000000000ULL,
  (unsigned __int128)100000000000ULL,
  (unsigned __int128)1000000000000ULL,
  (unsigned __int128)10000000000000ULL,
  (unsigned __int128)100000000000000ULL,
  (unsigned __int128)1000000000000000ULL,
  (unsigned __int128)10000000000000000ULL,
  (unsigned __int128)100000000000000000ULL,
  (unsigned __int128)1000000000000000000ULL,
  (unsigned __int128)10000000000000000000ULL,
  (unsigned __int128)10000000000000000000ULL * 10ULL,
  (unsigned __int128)10000000000000000000ULL * 100ULL,
  (unsigned __int128)10000000000000000000ULL * 1000ULL,
  (unsigned __int128)10000000000000000000ULL * 10000ULL,
  (unsigned __int128)10000000000000000000ULL * 100000ULL,
  (unsigned __int128)10000000000000000000ULL * 1000000ULL,
  (unsigned __int128)10000000000000000000ULL * 10000000ULL,
  (unsigned __int128)10000000000000000000ULL * 100000000ULL,
  (unsigned __int128)10000000000000000000ULL * 1000000000ULL,
  (unsigned __int128)10000000000000000000ULL * 10000000000ULL,
  (unsigned __int128)10000000000000000000ULL * 100000000000ULL,
  (unsigned __int128)10000000000000000000ULL * 1000000000000ULL,
  (unsigned __int128)10000000000000000000ULL * 10000000000000ULL,
  (unsigned __int128)10000000000000000000ULL * 100000000000000ULL,
  (unsigned __int128)10000000000000000000ULL * 1000000000000000ULL,
  (unsigned __int128)10000000000000000000ULL * 10000000000000000ULL,
  (unsigned __int128)10000000000000000000ULL * 100000000000000000ULL,
  (unsigned __int128)10000000000000000000ULL * 1000000000000000000ULL,
  (unsigned __int128)10000000000000000000ULL * 10000000000000000000ULL,
};

static inline unsigned __int128 pow10u(int n) { return pow10_tab[n]; }

static int coef_digits(unsigned __int128 c) {
  int d = 0;
  while (d < POW10_COUNT && c >= pow10u(d)) d++;
  return d; /* 0 for 0 */
}

int trb_dec_digits(const trb_dec *d) { return coef_digits(d->coef); }

static int dec_adj(const trb_dec *d) { return d->exp + coef_digits(d->coef) - 1; }

/* Strip trailing zeros into exp and force zero to its canonical form. */
static void dec_normalize(trb_dec *d) {
  if (d->coef == 0) {
    d->exp = 0;
    d->neg = 0;
    return;
  }
  while (d->coef % 10 == 0) {
    d->coef /= 10;
    d->exp++;
  }
}

/* Range check of a normalized value whose coef may still be >= 10^38
 * (arithmetic results): more digits than 38 is "overflow" as AWS says. */
static trb_err dec_check(const trb_dec *d, trb_status *st) {
  if (d->coef == 0) return TRB_OK;
  if (d->coef >= pow10u(TRB_DEC_MAX_DIGITS))
    return trb_status_set(st, TRB_EINVAL, "%s", MSG_OVERFLOW);
  int adj = dec_adj(d);
  if (adj > TRB_DEC_MAX_ADJEXP) return trb_status_set(st, TRB_EINVAL, "%s", MSG_OVERFLOW);
  if (adj < TRB_DEC_MIN_ADJEXP) return trb_status_set(st, TRB_EINVAL, "%s", MSG_UNDERFLOW);
  return TRB_OK;
}

/* ------------------------------------------------------------------ parse */

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Saturation bound for exponents and digit positions during parsing: far
 * outside the representable range, far inside int64. */
#define PARSE_SAT ((int64_t)1 << 50)

trb_err trb_dec_parse(const char *s, size_t len, trb_dec *out, trb_status *st) {
  size_t i = 0;
  int neg = 0;
  /* Pass 1: syntax. Mantissa [mb, me), optional point, exponent digits
   * [eb, len) with sign esign. */
  if (i < len && (s[i] == '+' || s[i] == '-')) {
    neg = s[i] == '-';
    i++;
  }
  size_t mb = i, ndig = 0;
  int seen_point = 0;
  for (; i < len; i++) {
    if (is_digit(s[i])) {
      ndig++;
    } else if (s[i] == '.' && !seen_point) {
      seen_point = 1;
    } else {
      break;
    }
  }
  size_t me = i;
  int64_t e10 = 0;
  if (ndig == 0) goto bad;
  if (i < len) {
    if (s[i] != 'e' && s[i] != 'E') goto bad;
    i++;
    int eneg = 0;
    if (i < len && (s[i] == '+' || s[i] == '-')) {
      eneg = s[i] == '-';
      i++;
    }
    if (i == len) goto bad;
    for (; i < len; i++) {
      if (!is_digit(s[i])) goto bad;
      if (e10 < PARSE_SAT) e10 = e10 * 10 + (s[i] - '0');
    }
    if (e10 > PARSE_SAT) e10 = PARSE_SAT;
    if (eneg) e10 = -e10;
  }

  /* Pass 2: value. Digit index k counts mantissa digits from 0; the point
   * sits after `intd` digits, so digit k has place value 10^(intd-1-k). */
  {
    int64_t intd = 0, k = 0;
    int64_t first = -1, last = -1; /* indices of first/last nonzero digit */
    for (size_t j = mb; j < me; j++) {
      if (s[j] == '.') {
        intd = k;
        continue;
      }
      if (s[j] != '0') {
        if (first < 0) first = k;
        last = k;
      }
      k++;
    }
    if (!seen_point) intd = k;
    trb_dec d = {0, 0, 0};
    if (first < 0) { /* zero, whatever the exponent */
      *out = d;
      return TRB_OK;
    }
    int64_t nsig = last - first + 1;
    if (nsig > TRB_DEC_MAX_DIGITS) return trb_status_set(st, TRB_EINVAL, "%s", MSG_DIGITS);
    int64_t adj = intd - 1 - first + e10; /* |terms| < 2^51, no overflow */
    if (adj > TRB_DEC_MAX_ADJEXP) return trb_status_set(st, TRB_EINVAL, "%s", MSG_OVERFLOW);
    if (adj < TRB_DEC_MIN_ADJEXP) return trb_status_set(st, TRB_EINVAL, "%s", MSG_UNDERFLOW);
    k = 0;
    for (size_t j = mb; j < me; j++) {
      if (s[j] == '.') continue;
      if (k >= first && k <= last) d.coef = d.coef * 10 + (unsigned)(s[j] - '0');
      k++;
    }
    d.exp = (int32_t)(adj - nsig + 1);
    d.neg = (uint8_t)neg;
    *out = d;
    return TRB_OK;
  }
bad:
  return trb_status_set(st, TRB_EINVAL, "The parameter cannot be converted to a numeric value: %.*s",
                        len > 400 ? 400 : (int)len, len ? s : "");
}

/* ----------------------------------------------------------------- format */

size_t trb_dec_format(const trb_dec *d, char *buf, size_t cap) {
  char digs[TRB_DEC_MAX_DIGITS + 1];
  char tmp[TRB_DEC_STR_MAX];
  size_t n = 0, nd = 0;
  if (d->coef == 0) {
    tmp[n++] = '0';
  } else {
    unsigned __int128 c = d->coef;
    while (c && nd < sizeof digs) {
      digs[nd++] = (char)('0' + (int)(c % 10));
      c /= 10;
    }
    /* digs holds the digits least significant first. */
    if (d->neg) tmp[n++] = '-';
    int64_t exp = d->exp;
    int64_t adj = exp + (int64_t)nd - 1;
    if (exp >= 0) {
      for (size_t i = nd; i > 0; i--) tmp[n++] = digs[i - 1];
      for (int64_t z = 0; z < exp && n < sizeof tmp - 1; z++) tmp[n++] = '0';
    } else if (adj >= 0) {
      size_t intd = (size_t)(adj + 1);
      for (size_t i = nd, k = 0; i > 0; i--, k++) {
        if (k == intd) tmp[n++] = '.';
        tmp[n++] = digs[i - 1];
      }
    } else {
      tmp[n++] = '0';
      tmp[n++] = '.';
      for (int64_t z = 0; z < -adj - 1 && n < sizeof tmp - 1 - nd; z++) tmp[n++] = '0';
      for (size_t i = nd; i > 0; i--) tmp[n++] = digs[i - 1];
    }
  }
  tmp[n] = 0;
  if (cap > 0) {
    size_t c = n < cap - 1 ? n : cap - 1;
    memcpy(buf, tmp, c);
    buf[c] = 0;
  }
  return n;
}

/* ------------------------------------------------------------- comparison */

/* Compare magnitudes of two nonzero canonical values. */
static int mag_cmp(const trb_dec *a, const trb_dec *b) {
  int da = coef_digits(a->coef), db = coef_digits(b->coef);
  int aa = a->exp + da - 1, ab = b->exp + db - 1;
  if (aa != ab) return aa < ab ? -1 : 1;
  /* Same leading position: align to the same digit count (fits: < 10^38). */
  unsigned __int128 ca = a->coef, cb = b->coef;
  if (da < db) ca *= pow10u(db - da);
  else if (db < da) cb *= pow10u(da - db);
  return ca < cb ? -1 : ca > cb ? 1 : 0;
}

int trb_dec_cmp(const trb_dec *a, const trb_dec *b) {
  int sa = a->coef == 0 ? 0 : a->neg ? -1 : 1;
  int sb = b->coef == 0 ? 0 : b->neg ? -1 : 1;
  if (sa != sb) return sa < sb ? -1 : 1;
  if (sa == 0) return 0;
  int m = mag_cmp(a, b);
  return sa > 0 ? m : -m;
}

/* ------------------------------------------------------------- arithmetic */

/*
 * Exact a + b. Let x be the operand with the larger exponent, y the other,
 * k = x.exp - y.exp >= 0. The exact sum is (x.coef*10^k +- y.coef) * 10^y.exp.
 * When k > 0, y.coef has a nonzero last digit, so the sum's last digit is
 * nonzero too and the result needs exactly as many digits as the raw
 * coefficient has: if x.coef*10^k exceeds 2*10^38 the result cannot fit 38
 * digits (it is at least x.coef*10^k - 10^38 > 10^38), so we stop before
 * computing anything that would not fit 128 bits (3.4e38 > 2e38 + 1e38).
 */
static trb_err dec_addsub(const trb_dec *a, const trb_dec *b, int negate_b, trb_dec *out,
                          trb_status *st) {
  trb_dec bb = *b;
  if (negate_b && bb.coef) bb.neg ^= 1;
  if (a->coef == 0) {
    *out = bb;
    dec_normalize(out);
    return TRB_OK;
  }
  if (bb.coef == 0) {
    *out = *a;
    return TRB_OK;
  }
  const trb_dec *x = a, *y = &bb;
  if (x->exp < y->exp) {
    x = &bb;
    y = a;
  }
  int64_t k = (int64_t)x->exp - y->exp;
  const unsigned __int128 lim = pow10u(TRB_DEC_MAX_DIGITS) * 2;
  if (k > TRB_DEC_MAX_DIGITS || x->coef > lim / pow10u((int)k))
    return trb_status_set(st, TRB_EINVAL, "%s", MSG_OVERFLOW);
  unsigned __int128 cx = x->coef * pow10u((int)k), cy = y->coef;
  trb_dec r = {0, y->exp, 0};
  if (x->neg == y->neg) {
    r.coef = cx + cy;
    r.neg = x->neg;
  } else if (cx >= cy) {
    r.coef = cx - cy;
    r.neg = x->neg;
  } else {
    r.coef = cy - cx;
    r.neg = y->neg;
  }
  dec_normalize(&r);
  trb_err rc = dec_check(&r, st);
  if (rc == TRB_OK) *out = r;
  return rc;
}

trb_err trb_dec_add(const trb_dec *a, const trb_dec *b, trb_dec *out, trb_status *st) {
  return dec_addsub(a, b, 0, out, st);
}

trb_err trb_dec_sub(const trb_dec *a, const trb_dec *b, trb_dec *out, trb_status *st) {
  return dec_addsub(a, b, 1, out, st);
}

void trb_dec_from_i64(int64_t v, trb_dec *out) {
  uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  out->coef = m;
  out->exp = 0;
  out->neg = v < 0;
  dec_normalize(out);
}

/* ------------------------------------------------------------------- size */

size_t trb_dec_size(const trb_dec *d) {
  if (d->coef == 0) return 1;
  int nd = coef_digits(d->coef);
  int adj = d->exp + nd - 1;
  /* dynalite's formula; its exponent is Big.js's `e`, i.e. the adjusted
   * exponent. "odd" includes negative odd values (JS's -1 % 2 is truthy). */
  size_t sz = 1 + (size_t)(nd + 1) / 2;
  if (nd % 2 == 0 && adj % 2 == 0) sz += 1;
  if (d->neg) sz += 1;
  return sz;
}

/* --------------------------------------------------------------- encoding */

#define CLASS_NEG 0x01
#define CLASS_ZERO 0x02
#define CLASS_POS 0x03
#define MAX_PAIRS ((TRB_DEC_MAX_DIGITS + 1) / 2)

trb_err trb_dec_encode_ordered(const trb_dec *d, trb_buf *b) {
  unsigned char e[2 + MAX_PAIRS];
  size_t n = 0;
  if (d->coef == 0) return trb_buf_put_u8(b, CLASS_ZERO);
  int nd = coef_digits(d->coef);
  int adj = d->exp + nd - 1;
  unsigned char inv = d->neg ? 0xFF : 0x00;
  e[n++] = d->neg ? CLASS_NEG : CLASS_POS;
  e[n++] = (unsigned char)((adj - TRB_DEC_MIN_ADJEXP) ^ inv);
  /* Digits most significant first, padded to an even count. */
  unsigned char digs[TRB_DEC_MAX_DIGITS + 1];
  unsigned __int128 c = d->coef;
  for (int i = nd - 1; i >= 0; i--) {
    digs[i] = (unsigned char)(c % 10);
    c /= 10;
  }
  if (nd % 2) digs[nd++] = 0;
  for (int i = 0; i < nd; i += 2) {
    unsigned pair = (unsigned)(digs[i] * 10 + digs[i + 1]);
    unsigned v = 2 * pair + (i + 2 < nd ? 1 : 0);
    e[n++] = (unsigned char)(v ^ inv);
  }
  return trb_buf_append(b, e, n);
}

int trb_dec_decode_ordered(trb_rd *r, trb_dec *out) {
  uint8_t cls, eb, v;
  if (trb_rd_u8(r, &cls)) return 1;
  if (cls == CLASS_ZERO) {
    out->coef = 0;
    out->exp = 0;
    out->neg = 0;
    return 0;
  }
  if (cls != CLASS_NEG && cls != CLASS_POS) goto bad;
  unsigned char inv = cls == CLASS_NEG ? 0xFF : 0x00;
  if (trb_rd_u8(r, &eb)) return 1;
  int adj = (int)(eb ^ inv) + TRB_DEC_MIN_ADJEXP;
  unsigned __int128 coef = 0;
  int nd = 0;
  for (int np = 0;; np++) {
    if (np >= MAX_PAIRS) goto bad;
    if (trb_rd_u8(r, &v)) return 1;
    v ^= inv;
    if (v > 199) goto bad;
    unsigned pair = v / 2u;
    int last = (v & 1) == 0;
    if (np == 0 && pair < 10) goto bad; /* leading zero digit */
    coef = coef * 100 + pair;
    nd += 2;
    if (last) {
      if (pair == 0) goto bad;
      if (pair % 10 == 0) {
        coef /= 10;
        nd--;
      }
      break;
    }
  }
  out->coef = coef;
  out->exp = adj - nd + 1;
  out->neg = cls == CLASS_NEG;
  return 0;
bad:
  r->err = 1;
  return 1;
}

trb_err trb_dec_encode(const trb_dec *d, trb_buf *b) { return trb_dec_encode_ordered(d, b); }

int trb_dec_decode(trb_rd *r, trb_dec *out) { return trb_dec_decode_ordered(r, out); }
