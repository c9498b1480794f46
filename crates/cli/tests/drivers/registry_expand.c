/* REG_EXPAND_SZ values (issue 11 item 4): RtlQueryRegistryValues expands them
 * (into a direct UNICODE_STRING and for a query routine, as REG_SZ) unless
 * RTL_QUERY_REGISTRY_NOEXPAND, from its Environment block when it has one;
 * ZwQueryValueKey returns them as stored. registry_expand.toml sets the values; the
 * last line prints what was read. */
#include <ntddk.h>

static ULONG checks, failures;
static ULONG routine_type;
static WCHAR routine_text[64];

#define CHECK(cond)                                                       \
    do {                                                                  \
        checks++;                                                         \
        if (!(cond)) {                                                    \
            failures++;                                                   \
            DbgPrint("expand: FAIL line %d: %s\n", __LINE__, #cond);     \
        }                                                                 \
    } while (0)

static NTSTATUS Each(PWSTR ValueName, ULONG ValueType, PVOID ValueData, ULONG ValueLength, PVOID Context,
                     PVOID EntryContext)
{
    UNREFERENCED_PARAMETER(ValueName);
    UNREFERENCED_PARAMETER(Context);
    UNREFERENCED_PARAMETER(EntryContext);
    routine_type = ValueType;
    if (ValueLength <= sizeof(routine_text))
        RtlCopyMemory(routine_text, ValueData, ValueLength);
    return STATUS_SUCCESS;
}

/* The Parameters value `name` read through a direct entry with `flags`. */
static NTSTATUS Direct(PUNICODE_STRING path, PCWSTR name, ULONG flags, PWSTR environment, PUNICODE_STRING out)
{
    RTL_QUERY_REGISTRY_TABLE table[3];
    RtlZeroMemory(table, sizeof(table));
    table[0].Flags = RTL_QUERY_REGISTRY_SUBKEY;
    table[0].Name = L"Parameters";
    table[1].Flags = RTL_QUERY_REGISTRY_DIRECT | RTL_QUERY_REGISTRY_REQUIRED | flags;
    table[1].Name = (PWSTR)name;
    table[1].EntryContext = out;
    out->Length = out->MaximumLength = 0;
    out->Buffer = NULL;
    return RtlQueryRegistryValues(RTL_REGISTRY_ABSOLUTE, path->Buffer, table, NULL, environment);
}

static BOOLEAN Is(PUNICODE_STRING s, PCWSTR text)
{
    UNICODE_STRING t;
    RtlInitUnicodeString(&t, text);
    return s->Buffer != NULL && RtlEqualUnicodeString(s, &t, FALSE);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    UNICODE_STRING s;
    RTL_QUERY_REGISTRY_TABLE table[3];
    WCHAR environment[] = L"SystemRoot=D:\\W\0Drive=E:\0";
    UCHAR buffer[128];
    ULONG result = 0;
    HANDLE key;
    OBJECT_ATTRIBUTES oa;
    UNICODE_STRING params, path_name;
    PKEY_VALUE_PARTIAL_INFORMATION partial = (PKEY_VALUE_PARTIAL_INFORMATION)buffer;
    UNREFERENCED_PARAMETER(DriverObject);

    CHECK(Direct(RegistryPath, L"Path", 0, NULL, &s) == STATUS_SUCCESS);
    DbgPrint("expand: Path %wZ\n", &s);
    CHECK(Is(&s, L"C:\\WINDOWS\\x") && s.MaximumLength == s.Length + sizeof(WCHAR));
    RtlFreeUnicodeString(&s);
    CHECK(Direct(RegistryPath, L"Mixed", 0, NULL, &s) == STATUS_SUCCESS);
    DbgPrint("expand: Mixed %wZ\n", &s);
    CHECK(Is(&s, L"%Unknown%;C:;100%"));
    RtlFreeUnicodeString(&s);
    CHECK(Direct(RegistryPath, L"Path", RTL_QUERY_REGISTRY_NOEXPAND, NULL, &s) == STATUS_SUCCESS);
    CHECK(Is(&s, L"%SystemRoot%\\x"));
    RtlFreeUnicodeString(&s);
    CHECK(Direct(RegistryPath, L"Path", 0, environment, &s) == STATUS_SUCCESS);
    DbgPrint("expand: with an environment %wZ\n", &s);
    CHECK(Is(&s, L"D:\\W\\x"));
    RtlFreeUnicodeString(&s);
    CHECK(Direct(RegistryPath, L"Mixed", 0, environment, &s) == STATUS_SUCCESS);
    CHECK(Is(&s, L"%Unknown%;%SystemDrive%;100%"));
    RtlFreeUnicodeString(&s);

    RtlZeroMemory(table, sizeof(table));
    table[0].Flags = RTL_QUERY_REGISTRY_SUBKEY;
    table[0].Name = L"Parameters";
    table[1].QueryRoutine = Each;
    table[1].Name = L"Path";
    CHECK(RtlQueryRegistryValues(RTL_REGISTRY_ABSOLUTE, RegistryPath->Buffer, table, NULL, NULL) == 0);
    CHECK(routine_type == REG_SZ && routine_text[0] == L'C' && routine_text[11] == L'x' && routine_text[12] == 0);
    table[1].Flags = RTL_QUERY_REGISTRY_NOEXPAND;
    CHECK(RtlQueryRegistryValues(RTL_REGISTRY_ABSOLUTE, RegistryPath->Buffer, table, NULL, NULL) == 0);
    CHECK(routine_type == REG_EXPAND_SZ && routine_text[0] == L'%');

    /* The value itself is stored unexpanded. */
    RtlInitUnicodeString(&params, L"Parameters");
    InitializeObjectAttributes(&oa, RegistryPath, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, NULL, NULL);
    CHECK(ZwOpenKey(&key, KEY_READ, &oa) == STATUS_SUCCESS);
    {
        HANDLE p;
        InitializeObjectAttributes(&oa, &params, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, key, NULL);
        CHECK(ZwOpenKey(&p, KEY_READ, &oa) == STATUS_SUCCESS);
        RtlInitUnicodeString(&path_name, L"Path");
        CHECK(ZwQueryValueKey(p, &path_name, KeyValuePartialInformation, buffer, sizeof(buffer), &result) == 0);
        CHECK(partial->Type == REG_EXPAND_SZ && partial->DataLength == 30 && ((PWCHAR)partial->Data)[0] == L'%');
        ZwClose(p);
    }
    ZwClose(key);
    DbgPrint("expand: %lu checks, %lu failed\n", checks, failures);
    return STATUS_SUCCESS;
}
