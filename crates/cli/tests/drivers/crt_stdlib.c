/* stdlib.h's routines: qsort and bsearch with a comparator, qsort with a comparator
 * that lies (it must still return, with every element kept), abs and labs. */
#include <ntddk.h>
#include <stdlib.h>

static ULONG checks, failures, calls;

#define CHECK(cond)                                                       \
    do {                                                                  \
        checks++;                                                         \
        if (!(cond)) {                                                    \
            failures++;                                                   \
            DbgPrint("crt: FAIL line %d: %s\n", __LINE__, #cond);        \
        }                                                                 \
    } while (0)

typedef struct {
    LONG key;
    CHAR tag[12];
} RECORD;

static int ByKey(const void *a, const void *b)
{
    LONG x = ((const RECORD *)a)->key, y = ((const RECORD *)b)->key;
    return x < y ? -1 : x > y;
}

static int Liar(const void *a, const void *b)
{
    UNREFERENCED_PARAMETER(a);
    UNREFERENCED_PARAMETER(b);
    calls++;
    return (calls % 3) ? -1 : 1;
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    RECORD r[64], key;
    ULONG i, sum = 0;
    RECORD *hit;
    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    for (i = 0; i < 64; i++) {
        r[i].key = (LONG)((i * 37) % 64) - 32;
        r[i].tag[0] = (CHAR)i;
    }
    qsort(r, 64, sizeof(RECORD), ByKey);
    for (i = 1; i < 64; i++)
        CHECK(r[i - 1].key < r[i].key);
    CHECK(r[0].key == -32 && r[0].tag[0] == 0 && r[63].key == 31);
    key.key = 5;
    hit = (RECORD *)bsearch(&key, r, 64, sizeof(RECORD), ByKey);
    CHECK(hit == &r[37]);
    key.key = 99;
    CHECK(bsearch(&key, r, 64, sizeof(RECORD), ByKey) == NULL);
    qsort(r, 64, sizeof(RECORD), Liar);
    for (i = 0; i < 64; i++)
        sum += (ULONG)(r[i].key + 32);
    CHECK(sum == 64 * 63 / 2);
    CHECK(calls > 0 && calls < 2 * 64 * 7);
    CHECK(abs(-7) == 7 && abs(7) == 7 && labs(-70000L) == 70000L && abs((-2147483647 - 1)) == (-2147483647 - 1));
    DbgPrint("crt: %lu checks, %lu failed\n", checks, failures);
    return STATUS_SUCCESS;
}
