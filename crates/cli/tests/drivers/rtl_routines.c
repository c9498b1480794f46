/* The run-time library routines end to end (issue 11 item 1): bitmaps, counted
 * strings and their conversions, ntstrsafe.h, memory and version routines. Each
 * CHECK prints the line of a failed check; the last line counts them. */
#include <ntddk.h>

static ULONG checks, failures;

#define CHECK(cond)                                                       \
    do {                                                                  \
        checks++;                                                         \
        if (!(cond)) {                                                    \
            failures++;                                                   \
            DbgPrint("rtl: FAIL line %d: %s\n", __LINE__, #cond);        \
        }                                                                 \
    } while (0)

static VOID Bitmaps(VOID)
{
    ULONG buffer[3];
    RTL_BITMAP map;
    RtlInitializeBitMap(&map, buffer, 70);
    CHECK(map.SizeOfBitMap == 70 && map.Buffer == buffer);
    RtlSetAllBits(&map);
    CHECK(buffer[2] == 0xFFFFFFFF);
    CHECK(RtlNumberOfSetBits(&map) == 70 && RtlNumberOfClearBits(&map) == 0);
    RtlClearAllBits(&map);
    CHECK(buffer[0] == 0 && buffer[1] == 0 && buffer[2] == 0);
    RtlSetBits(&map, 30, 5);
    CHECK(buffer[0] == 0xC0000000 && buffer[1] == 0x7);
    CHECK(RtlTestBit(&map, 34) && !RtlTestBit(&map, 35) && RtlCheckBit(&map, 30) == 1 && RtlCheckBit(&map, 29) == 0);
    CHECK(RtlAreBitsSet(&map, 30, 5) && !RtlAreBitsSet(&map, 29, 2) && RtlAreBitsClear(&map, 35, 35));
    CHECK(!RtlAreBitsClear(&map, 60, 11));
    CHECK(RtlNumberOfSetBits(&map) == 5 && RtlNumberOfClearBits(&map) == 65);
    CHECK(RtlFindSetBits(&map, 5, 0) == 30 && RtlFindSetBits(&map, 6, 0) == 0xFFFFFFFF);
    CHECK(RtlFindClearBits(&map, 30, 0) == 0);
    CHECK(RtlFindClearBits(&map, 31, 0) == 35);
    /* From the hint to the end, then wrapped to the start. */
    CHECK(RtlFindClearBits(&map, 10, 65) == 0);
    CHECK(RtlFindClearBitsAndSet(&map, 4, 40) == 40 && RtlAreBitsSet(&map, 40, 4));
    CHECK(RtlFindSetBitsAndClear(&map, 5, 31) == 30 && RtlAreBitsClear(&map, 30, 5));
    RtlClearBits(&map, 40, 4);
    CHECK(RtlNumberOfSetBits(&map) == 0);
    DbgPrint("rtl: bitmaps done\n");
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    Bitmaps();
    DbgPrint("rtl: %lu checks, %lu failed\n", checks, failures);
    return STATUS_SUCCESS;
}
