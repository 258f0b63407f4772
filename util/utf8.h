/*
 * utf8.h -- well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates,
 * nothing past U+10FFFF): the rule jansson applies to JSON strings and Avro
 * to its strings. NUL bytes are allowed (both are length-counted).
 */
#ifndef TRB_UTF8_H
#define TRB_UTF8_H

#include <stddef.h>

/* 1 when s[0..n) is well-formed UTF-8, else 0. */
int trb_utf8_valid(const char *s, size_t n);

#endif
