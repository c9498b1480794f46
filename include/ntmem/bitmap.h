/*
 * ntmem: bitmaps (RTL_BITMAP and the Rtl*Bits routines, wdm.h). Included by
 * wdm.h; declares only what ntmem implements.
 *
 * Bit i is bit (i % 32) of Buffer[i / 32]. IRQL: any when the header and the
 * buffer are nonpaged, else <= APC_LEVEL.
 */
#ifndef NTMEM_BITMAP_H
#define NTMEM_BITMAP_H

typedef struct _RTL_BITMAP {
    ULONG SizeOfBitMap; /* bits */
    PULONG Buffer;      /* ULONGs, at least (SizeOfBitMap + 31) / 32 */
} RTL_BITMAP, *PRTL_BITMAP;
_Static_assert(sizeof(RTL_BITMAP) == 16, "RTL_BITMAP is 16 bytes on x64");
_Static_assert(__builtin_offsetof(RTL_BITMAP, Buffer) == 8, "RTL_BITMAP.Buffer at 8");

NTSYSAPI VOID RtlInitializeBitMap(PRTL_BITMAP BitMapHeader, PULONG BitMapBuffer, ULONG SizeOfBitMap);
/* Whole ULONGs: the last word's bits past SizeOfBitMap too. */
NTSYSAPI VOID RtlClearAllBits(PRTL_BITMAP BitMapHeader);
NTSYSAPI VOID RtlSetAllBits(PRTL_BITMAP BitMapHeader);
NTSYSAPI VOID RtlSetBits(PRTL_BITMAP BitMapHeader, ULONG StartingIndex, ULONG NumberToSet);
NTSYSAPI VOID RtlClearBits(PRTL_BITMAP BitMapHeader, ULONG StartingIndex, ULONG NumberToClear);
/* From HintIndex to the end, then from 0 back to the hint; 0xFFFFFFFF when no
 * run of NumberToFind bits exists. */
NTSYSAPI ULONG RtlFindClearBits(PRTL_BITMAP BitMapHeader, ULONG NumberToFind, ULONG HintIndex);
NTSYSAPI ULONG RtlFindSetBits(PRTL_BITMAP BitMapHeader, ULONG NumberToFind, ULONG HintIndex);
NTSYSAPI ULONG RtlFindClearBitsAndSet(PRTL_BITMAP BitMapHeader, ULONG NumberToFind, ULONG HintIndex);
NTSYSAPI ULONG RtlFindSetBitsAndClear(PRTL_BITMAP BitMapHeader, ULONG NumberToFind, ULONG HintIndex);
/* FALSE for a range not inside the bitmap. */
NTSYSAPI BOOLEAN RtlAreBitsClear(PRTL_BITMAP BitMapHeader, ULONG StartingIndex, ULONG Length);
NTSYSAPI BOOLEAN RtlAreBitsSet(PRTL_BITMAP BitMapHeader, ULONG StartingIndex, ULONG Length);
NTSYSAPI ULONG RtlNumberOfSetBits(PRTL_BITMAP BitMapHeader);
NTSYSAPI ULONG RtlNumberOfClearBits(PRTL_BITMAP BitMapHeader);
NTSYSAPI BOOLEAN RtlTestBit(PRTL_BITMAP BitMapHeader, ULONG BitNumber);
/* A macro, as in the WDK: the bit read in place. (The x64 WDK tests it with a
 * 64-bit bit test, which reads the ULONG after it too; this reads only its own.) */
#define RtlCheckBit(BMH, BP) ((ULONG)((((const ULONG *)(BMH)->Buffer)[(ULONG)(BP) / 32] >> ((ULONG)(BP) % 32)) & 1))

#endif /* NTMEM_BITMAP_H */
