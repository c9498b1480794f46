/* A driver whose functions cover the shapes of x64 unwind data clang 19 emits: __try
 * nesting (__finally inside __except with a filter), __except(1) with no filter, a frame
 * larger than a page (__chkstk, UWOP_ALLOC_LARGE), alloca (a frame pointer), eight
 * non-volatile registers and XMM6 saved, a PAGE section and an INIT DriverEntry.
 * Each routine is exported so that the tests find it by name. */
typedef long NTSTATUS;
typedef unsigned long ULONG;
#define EXPORT __declspec(dllexport) __declspec(noinline)

int _fltused;
__declspec(dllimport) void *ExAllocatePool2(unsigned long long Flags, unsigned long long Size, ULONG Tag);
__declspec(dllimport) void ExFreePoolWithTag(void *P, ULONG Tag);
__declspec(dllimport) void KeStallExecutionProcessor(ULONG Microseconds);
__declspec(dllimport) extern void *MmSystemRangeStart;

volatile int g_counter;
int *g_pointer = (int *)&g_counter;
void (*g_callbacks[2])(ULONG) = { KeStallExecutionProcessor, 0 };

static int filter(ULONG code) { return code == 0xC0000005 ? 1 : 0; }

EXPORT int nested(volatile int *p) {
    int r = 0;
    __try {
        __try {
            r = *p;
        } __finally {
            g_counter++;
        }
    } __except (filter(_exception_code())) {
        r = -1;
    }
    return r;
}

EXPORT int no_filter(volatile int *p) {
    int r;
    __try {
        r = *p;
    } __except (1) {
        r = -2;
    }
    return r;
}

EXPORT int large_frame(int n) {
    volatile char buffer[8000];
    buffer[n] = 1;
    return buffer[n / 2] + nested(g_pointer);
}

EXPORT int dynamic_frame(int n) {
    volatile char *p = __builtin_alloca(n);
    p[0] = 1;
    return p[n - 1] + large_frame(n);
}

EXPORT double many_registers(double a, double b, int *v) {
    double x = a * b, y = a + b, z = a - b, w = a / b;
    int s0 = v[0], s1 = v[1], s2 = v[2], s3 = v[3], s4 = v[4], s5 = v[5], s6 = v[6], s7 = v[7];
    KeStallExecutionProcessor((ULONG)s0);
    v[0] = s0 + s1 * s2 - s3; v[1] = s4 ^ s5; v[2] = s6 | s7;
    KeStallExecutionProcessor((ULONG)s1);
    v[3] = s0 * s7 + s1 * s6 + s2 * s5 + s3 * s4;
    return x * y + z * w;
}

EXPORT int exported_routine(int x) { return x + 1; }

__declspec(code_seg("PAGE")) EXPORT int paged_routine(int x) { return x * 3 + large_frame(x); }

EXPORT NTSTATUS DriverEntry(void *DriverObject, void *RegistryPath);
#pragma alloc_text(INIT, DriverEntry)
NTSTATUS DriverEntry(void *DriverObject, void *RegistryPath) {
    void *p = ExAllocatePool2(0x40, 16, 'tseT');
    int v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    __try {
        g_counter = nested(0) + no_filter(0);
    } __except (1) {
        g_counter = 2;
    }
    ExFreePoolWithTag(p, 'tseT');
    g_callbacks[0](1);
    return dynamic_frame(g_counter) + paged_routine(3) + (int)many_registers(1.0, 2.0, v)
        + (int)(long long)MmSystemRangeStart;
}
