/*
 * guiddef.h -- GUID and DEFINE_GUID, as the Windows SDK's guiddef.h defines them
 * (written for ntmem from Microsoft's documentation of GUID and DEFINE_GUID).
 * DEFINE_GUID declares the GUID; after initguid.h (INITGUID) it defines it, once per
 * driver, as the WDK arranges. This part is re-read each time the header is
 * included, so initguid.h can switch it.
 */
#ifndef GUID_DEFINED
#define GUID_DEFINED
typedef struct _GUID {
    unsigned long Data1;
    unsigned short Data2;
    unsigned short Data3;
    unsigned char Data4[8];
} GUID;
_Static_assert(sizeof(GUID) == 16, "GUID is 16 bytes");
#endif

#ifndef __LPGUID_DEFINED__
#define __LPGUID_DEFINED__
typedef GUID *LPGUID;
typedef const GUID *LPCGUID;
typedef const GUID *REFGUID;
#define IsEqualGUID(a, b) (__builtin_memcmp((a), (b), sizeof(GUID)) == 0)
#define InlineIsEqualGUID(a, b) IsEqualGUID(a, b)
#endif

#ifndef EXTERN_C
#ifdef __cplusplus
#define EXTERN_C extern "C"
#else
#define EXTERN_C extern
#endif
#endif

#ifdef DEFINE_GUID
#undef DEFINE_GUID
#endif
#ifdef INITGUID
#define DEFINE_GUID(name, l, w1, w2, b1, b2, b3, b4, b5, b6, b7, b8) \
    EXTERN_C const GUID __declspec(selectany) name = {l, w1, w2, {b1, b2, b3, b4, b5, b6, b7, b8}}
#else
#define DEFINE_GUID(name, l, w1, w2, b1, b2, b3, b4, b5, b6, b7, b8) EXTERN_C const GUID name
#endif
