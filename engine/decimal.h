/*
 * decimal.h -- DynamoDB numbers: exact decimals, no floating point anywhere.
 *
 * A number is (-1)^neg * coef * 10^exp with coef < 10^38 (38 significant
 * digits fit in an unsigned __int128, whose max is about 3.4e38).
 * Canonical form (every trb_dec produced by this module is canonical):
 *   - zero is coef = 0, exp = 0, neg = 0 (so -0 == 0 bit for bit);
 *   - otherwise coef has no trailing decimal zeros (1000 -> coef 1, exp 3).
 * Two canonical decimals are equal iff their fields are equal.
 *
 * Range (DynamoDB's): nonzero magnitudes from 1E-130 to
 * 9.9999999999999999999999999999999999999E+125, i.e. the adjusted exponent
 * (exp + digits - 1) lies in [-130, 125].
 */
#ifndef TRB_DECIMAL_H
#define TRB_DECIMAL_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/trb_err.h"

#define TRB_DEC_MAX_DIGITS 38
#define TRB_DEC_MIN_ADJEXP (-130)
#define TRB_DEC_MAX_ADJEXP 125

typedef struct trb_dec {
  unsigned __int128 coef;
  int32_t exp;
  uint8_t neg;
} trb_dec;

/*
 * Parses DynamoDB's accepted spellings: optional sign, digits with an
 * optional point (".123", "0001.23", "5."), optional exponent ("1e+5",
 * "-17.4E37", "0e1000"). No spaces, no NaN/Infinity, no hex.
 * Errors (TRB_EINVAL, message in st, DynamoDB's texts):
 *   "The parameter cannot be converted to a numeric value: <s>"
 *   "Attempting to store more than 38 significant digits in a Number"
 *   "Number overflow. Attempting to store a number with magnitude larger than supported range"
 *   "Number underflow. Attempting to store a number with magnitude smaller than supported range"
 * Leading and trailing zeros do not count as significant digits.
 */
trb_err trb_dec_parse(const char *s, size_t len, trb_dec *out, trb_status *st);

/*
 * Canonical text without exponent, as DynamoDB returns numbers:
 * "1e3" -> "1000", "-0.50" -> "-0.5", "1e-3" -> "0.001", "-0" -> "0".
 * Writes a NUL-terminated string into buf (cap bytes); returns its length,
 * or the length it would need (like snprintf) if cap is too small.
 * TRB_DEC_STR_MAX is always enough.
 */
#define TRB_DEC_STR_MAX 176
size_t trb_dec_format(const trb_dec *d, char *buf, size_t cap);

/* -1, 0, 1 by numeric value. */
int trb_dec_cmp(const trb_dec *a, const trb_dec *b);
static inline int trb_dec_is_zero(const trb_dec *d) { return d->coef == 0; }
/* Number of significant digits (0 for zero). */
int trb_dec_digits(const trb_dec *d);

/* Exact arithmetic for UpdateItem's + / - / ADD. A result that needs more than
 * 38 digits or leaves the range is TRB_EINVAL with DynamoDB's message. */
trb_err trb_dec_add(const trb_dec *a, const trb_dec *b, trb_dec *out, trb_status *st);
trb_err trb_dec_sub(const trb_dec *a, const trb_dec *b, trb_dec *out, trb_status *st);

/* From a machine integer (always exact). */
void trb_dec_from_i64(int64_t v, trb_dec *out);

/*
 * DynamoDB's storage size of a number in bytes (see spec 2.3: zero -> 1,
 * else 1 + ceil(d/2) + (d odd or e odd ? 0 : 1) + (negative ? 1 : 0)).
 */
size_t trb_dec_size(const trb_dec *d);

/*
 * Order-preserving encoding: memcmp order of the encodings equals numeric
 * order. Appends to b. Used inside key encodings (engine/keyenc.c); the
 * encoding is self-delimiting (a decoder knows where it ends).
 * Layout (documented in decimal.c): a class byte (negative / zero /
 * positive), then the biased adjusted exponent and the digits, inverted for
 * negative numbers.
 */
trb_err trb_dec_encode_ordered(const trb_dec *d, trb_buf *b);
/* Decodes one ordered encoding from r. Returns nonzero on malformed input. */
int trb_dec_decode_ordered(trb_rd *r, trb_dec *out);

/* Compact binary form for the item codec: appends; decode returns nonzero
 * on malformed input (or a non-canonical value). */
trb_err trb_dec_encode(const trb_dec *d, trb_buf *b);
int trb_dec_decode(trb_rd *r, trb_dec *out);

#endif
