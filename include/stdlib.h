/*
 * stdlib.h -- the C run-time's sorting, searching and absolute-value routines
 * ntoskrnl.exe exports to drivers (written for ntmem from Microsoft's C run-time
 * documentation). A long is 32 bits on Windows.
 */
#ifndef NTMEM_STDLIB_H
#define NTMEM_STDLIB_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

__declspec(dllimport) int abs(int n);
__declspec(dllimport) long labs(long n);
__declspec(dllimport) void qsort(void *base, size_t num, size_t width,
                                 int (*compare)(const void *element1, const void *element2));
__declspec(dllimport) void *bsearch(const void *key, const void *base, size_t num, size_t width,
                                    int (*compare)(const void *key, const void *datum));

#ifdef __cplusplus
}
#endif

#endif /* NTMEM_STDLIB_H */
