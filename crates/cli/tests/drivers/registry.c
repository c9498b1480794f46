/* The registry for drivers (issue 11 item 4): the service key DriverEntry is given,
 * the Parameters values registry.toml sets, the Zw key routines with each
 * information class and their short-buffer statuses, RtlQueryRegistryValues with
 * direct entries, defaults, required values, subkeys and a query routine,
 * RtlWriteRegistryValue, and IoOpenDeviceRegistryKey from AddDevice. Each CHECK
 * prints the line of a failed check; the last line counts them. */
#include <ntddk.h>

static ULONG checks, failures;

#define CHECK(cond)                                                       \
    do {                                                                  \
        checks++;                                                         \
        if (!(cond)) {                                                    \
            failures++;                                                   \
            DbgPrint("reg: FAIL line %d: %s\n", __LINE__, #cond);        \
        }                                                                 \
    } while (0)

static UNICODE_STRING Name(PCWSTR s)
{
    UNICODE_STRING u;
    RtlInitUnicodeString(&u, s);
    return u;
}

static NTSTATUS Open(PHANDLE key, HANDLE root, PCWSTR path)
{
    OBJECT_ATTRIBUTES oa;
    UNICODE_STRING u = Name(path);
    InitializeObjectAttributes(&oa, &u, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, root, NULL);
    return ZwOpenKey(key, KEY_READ, &oa);
}

static VOID ValueClasses(HANDLE params)
{
    UCHAR buffer[128];
    ULONG result = 0;
    UNICODE_STRING size = Name(L"BufferSize");
    PKEY_VALUE_PARTIAL_INFORMATION partial = (PKEY_VALUE_PARTIAL_INFORMATION)buffer;
    PKEY_VALUE_FULL_INFORMATION full = (PKEY_VALUE_FULL_INFORMATION)buffer;
    PKEY_VALUE_BASIC_INFORMATION basic = (PKEY_VALUE_BASIC_INFORMATION)buffer;

    CHECK(ZwQueryValueKey(params, &size, KeyValuePartialInformation, buffer, sizeof(buffer), &result) ==
          STATUS_SUCCESS);
    CHECK(result == 16 && partial->Type == REG_DWORD && partial->DataLength == 4 && *(ULONG *)partial->Data == 4096);
    /* The fixed part fits, the data does not: overflow, the whole length asked for. */
    RtlFillMemory(buffer, sizeof(buffer), 0xCC);
    CHECK(ZwQueryValueKey(params, &size, KeyValuePartialInformation, buffer, 14, &result) == STATUS_BUFFER_OVERFLOW);
    CHECK(result == 16 && partial->DataLength == 4 && partial->Data[0] == 0x00 && partial->Data[1] == 0x10 &&
          partial->Data[2] == 0xCC);
    /* Not even the fixed part: too small, nothing written. */
    RtlFillMemory(buffer, sizeof(buffer), 0xCC);
    CHECK(ZwQueryValueKey(params, &size, KeyValuePartialInformation, buffer, 11, &result) == STATUS_BUFFER_TOO_SMALL);
    CHECK(result == 16 && buffer[0] == 0xCC);
    /* Full: Name at 20, data at the next 8-byte boundary (20 + 20 = 40). */
    CHECK(ZwQueryValueKey(params, &size, KeyValueFullInformation, buffer, sizeof(buffer), &result) == STATUS_SUCCESS);
    CHECK(result == 44 && full->DataOffset == 40 && full->DataLength == 4 && full->NameLength == 20);
    CHECK(*(ULONG *)(buffer + full->DataOffset) == 4096 && full->Name[0] == L'B');
    CHECK(ZwQueryValueKey(params, &size, KeyValueBasicInformation, buffer, sizeof(buffer), &result) == STATUS_SUCCESS);
    CHECK(result == 32 && basic->Type == REG_DWORD && basic->NameLength == 20 && basic->Name[9] == L'e');
    CHECK(ZwQueryValueKey(params, &size, KeyValueBasicInformation, buffer, 12, &result) == STATUS_BUFFER_OVERFLOW);
    CHECK(ZwQueryValueKey(params, &size, (KEY_VALUE_INFORMATION_CLASS)9, buffer, sizeof(buffer), &result) ==
          STATUS_INVALID_PARAMETER);
    {
        UNICODE_STRING none = Name(L"NoSuchValue");
        CHECK(ZwQueryValueKey(params, &none, KeyValuePartialInformation, buffer, sizeof(buffer), &result) ==
              STATUS_OBJECT_NAME_NOT_FOUND);
    }
    {
        UNICODE_STRING q = Name(L"limit"); /* names compare without case */
        CHECK(ZwQueryValueKey(params, &q, KeyValuePartialInformation, buffer, sizeof(buffer), &result) == 0);
        CHECK(partial->Type == REG_QWORD && *(ULONG64 *)partial->Data == 0x100000000ull);
    }
}

static VOID Enumerate(HANDLE params)
{
    UCHAR buffer[256];
    ULONG result, i;
    PKEY_VALUE_BASIC_INFORMATION basic = (PKEY_VALUE_BASIC_INFORMATION)buffer;
    PKEY_FULL_INFORMATION key = (PKEY_FULL_INFORMATION)buffer;
    PKEY_BASIC_INFORMATION sub = (PKEY_BASIC_INFORMATION)buffer;
    /* The scenario's six values, in the order of their names. */
    for (i = 0; ZwEnumerateValueKey(params, i, KeyValueBasicInformation, buffer, sizeof(buffer), &result) == 0; i++)
        ;
    CHECK(i == 6);
    CHECK(ZwEnumerateValueKey(params, 6, KeyValueBasicInformation, buffer, sizeof(buffer), &result) ==
          STATUS_NO_MORE_ENTRIES);
    CHECK(ZwEnumerateValueKey(params, 0, KeyValueBasicInformation, buffer, sizeof(buffer), &result) == 0);
    CHECK(basic->NameLength == 8 && basic->Name[0] == L'B' && basic->Type == REG_BINARY);
    CHECK(ZwQueryKey(params, KeyFullInformation, buffer, sizeof(buffer), &result) == 0);
    CHECK(result == 44 && key->Values == 6 && key->SubKeys == 0 && key->ClassOffset == 0xFFFFFFFF);
    CHECK(key->MaxValueNameLen == 20 && key->MaxValueDataLen == 30); /* "BufferSize"; Path's 15 characters */
    CHECK(ZwQueryKey(params, KeyFullInformation, buffer, 40, &result) == STATUS_BUFFER_TOO_SMALL && result == 44);
    {
        HANDLE sub1, sub2;
        ULONG disposition = 0;
        OBJECT_ATTRIBUTES oa;
        UNICODE_STRING zeta = Name(L"zeta"), alpha = Name(L"Alpha");
        InitializeObjectAttributes(&oa, &zeta, OBJ_KERNEL_HANDLE, params, NULL);
        CHECK(ZwCreateKey(&sub1, KEY_ALL_ACCESS, &oa, 0, NULL, REG_OPTION_VOLATILE, &disposition) == 0);
        CHECK(disposition == REG_CREATED_NEW_KEY);
        InitializeObjectAttributes(&oa, &alpha, OBJ_KERNEL_HANDLE, params, NULL);
        CHECK(ZwCreateKey(&sub2, KEY_ALL_ACCESS, &oa, 0, NULL, 0, &disposition) == 0);
        CHECK(disposition == REG_CREATED_NEW_KEY);
        ZwClose(sub2);
        CHECK(ZwCreateKey(&sub2, KEY_ALL_ACCESS, &oa, 0, NULL, 0, &disposition) == 0);
        CHECK(disposition == REG_OPENED_EXISTING_KEY);
        ZwClose(sub2);
        ZwClose(sub1);
        CHECK(ZwEnumerateKey(params, 0, KeyBasicInformation, buffer, sizeof(buffer), &result) == 0);
        CHECK(sub->NameLength == 10 && sub->Name[0] == L'A' && result == 26);
        CHECK(ZwEnumerateKey(params, 1, KeyBasicInformation, buffer, sizeof(buffer), &result) == 0);
        CHECK(sub->NameLength == 8 && sub->Name[0] == L'z');
        CHECK(ZwEnumerateKey(params, 2, KeyBasicInformation, buffer, sizeof(buffer), &result) ==
              STATUS_NO_MORE_ENTRIES);
        InitializeObjectAttributes(&oa, &zeta, OBJ_KERNEL_HANDLE, NULL, NULL);
        CHECK(ZwOpenKey(&sub1, KEY_READ, &oa) == STATUS_OBJECT_PATH_SYNTAX_BAD); /* relative, no root */
        CHECK(Open(&sub1, NULL, L"\\Registry\\Machine\\System\\NoSuch\\Key") == STATUS_OBJECT_NAME_NOT_FOUND);
        InitializeObjectAttributes(&oa, &zeta, OBJ_KERNEL_HANDLE, params, NULL);
        oa.Length = 12;
        CHECK(ZwOpenKey(&sub1, KEY_READ, &oa) == STATUS_INVALID_PARAMETER);
    }
}

static VOID SetAndDelete(HANDLE params)
{
    UCHAR buffer[64];
    ULONG result, value = 7;
    UNICODE_STRING n = Name(L"Written");
    PKEY_VALUE_PARTIAL_INFORMATION partial = (PKEY_VALUE_PARTIAL_INFORMATION)buffer;
    CHECK(ZwSetValueKey(params, &n, 0, REG_DWORD, &value, sizeof(value)) == 0);
    CHECK(ZwQueryValueKey(params, &n, KeyValuePartialInformation, buffer, sizeof(buffer), &result) == 0);
    CHECK(*(ULONG *)partial->Data == 7);
    CHECK(ZwDeleteValueKey(params, &n) == 0);
    CHECK(ZwDeleteValueKey(params, &n) == STATUS_OBJECT_NAME_NOT_FOUND);
    CHECK(ZwQueryValueKey(params, &n, KeyValuePartialInformation, buffer, sizeof(buffer), &result) ==
          STATUS_OBJECT_NAME_NOT_FOUND);
    CHECK(ZwSetValueKey((HANDLE)(LONG_PTR)0x1234, &n, 0, REG_DWORD, &value, 4) == STATUS_INVALID_HANDLE);
}

static ULONG routine_calls;
static WCHAR routine_seen[8];

static NTSTATUS EachString(PWSTR ValueName, ULONG ValueType, PVOID ValueData, ULONG ValueLength, PVOID Context,
                           PVOID EntryContext)
{
    UNREFERENCED_PARAMETER(EntryContext);
    if (Context != (PVOID)0x5A || ValueType != REG_SZ || ValueName[0] != L'N')
        return STATUS_UNSUCCESSFUL;
    routine_seen[routine_calls % 8] = ((PWCHAR)ValueData)[ValueLength / sizeof(WCHAR) - 2];
    routine_calls++;
    return STATUS_SUCCESS;
}

static VOID QueryTable(PUNICODE_STRING RegistryPath)
{
    RTL_QUERY_REGISTRY_TABLE table[8];
    ULONG buffer_size = 0, missing = 0, fallback = 99;
    LONG blob[4];
    ULONG64 limit = 0;
    LONG limit_box[4];
    UNICODE_STRING name = {0, 0, NULL};
    WCHAR small_buffer[2];
    UNICODE_STRING small = {0, sizeof(small_buffer), small_buffer};
    NTSTATUS status;

    RtlZeroMemory(table, sizeof(table));
    table[0].Flags = RTL_QUERY_REGISTRY_SUBKEY;
    table[0].Name = L"Parameters";
    table[1].Flags = RTL_QUERY_REGISTRY_DIRECT | RTL_QUERY_REGISTRY_REQUIRED;
    table[1].Name = L"BufferSize";
    table[1].EntryContext = &buffer_size;
    table[2].Flags = RTL_QUERY_REGISTRY_DIRECT;
    table[2].Name = L"Missing";
    table[2].EntryContext = &missing;
    table[3].Flags = RTL_QUERY_REGISTRY_DIRECT;
    table[3].Name = L"Fallback";
    table[3].EntryContext = &fallback;
    table[3].DefaultType = REG_DWORD;
    table[3].DefaultData = &buffer_size; /* read after entry 1 stored it */
    table[3].DefaultLength = sizeof(ULONG);
    table[4].Flags = RTL_QUERY_REGISTRY_DIRECT;
    table[4].Name = L"Name";
    table[4].EntryContext = &name;
    table[5].Flags = RTL_QUERY_REGISTRY_DIRECT;
    table[5].Name = L"Blob";
    table[5].EntryContext = blob;
    blob[0] = -(LONG)sizeof(blob);
    table[6].QueryRoutine = EachString;
    table[6].Name = L"Names";
    status = RtlQueryRegistryValues(RTL_REGISTRY_ABSOLUTE, RegistryPath->Buffer, table, (PVOID)0x5A, NULL);
    CHECK(status == STATUS_SUCCESS);
    CHECK(buffer_size == 4096 && missing == 0 && fallback == 4096);
    CHECK(name.Length == 6 && name.MaximumLength == 8 && name.Buffer != NULL && name.Buffer[0] == L'n' &&
          name.Buffer[3] == 0);
    RtlFreeUnicodeString(&name);
    CHECK(((PUCHAR)blob)[0] == 0xDE && ((PUCHAR)blob)[1] == 0xAD);
    CHECK(routine_calls == 2 && routine_seen[0] == L'a' && routine_seen[1] == L'c');

    /* Relative to the Services key, by the service's name. */
    RtlZeroMemory(table, sizeof(table));
    table[0].Flags = RTL_QUERY_REGISTRY_DIRECT;
    table[0].Name = L"Limit";
    table[0].EntryContext = limit_box;
    limit_box[0] = sizeof(limit_box);
    CHECK(RtlQueryRegistryValues(RTL_REGISTRY_SERVICES, L"registry\\Parameters", table, NULL, NULL) == 0);
    CHECK(limit_box[0] == 8 && limit_box[1] == REG_QWORD && limit_box[2] == 0 && limit_box[3] == 1);
    limit_box[0] = -4; /* a box too small for a REG_QWORD */
    CHECK(RtlQueryRegistryValues(RTL_REGISTRY_SERVICES, L"registry\\Parameters", table, NULL, NULL) ==
          STATUS_BUFFER_TOO_SMALL);
    /* The type check refuses a REG_QWORD for a ULONG. */
    table[0].Flags = RTL_QUERY_REGISTRY_DIRECT | RTL_QUERY_REGISTRY_TYPECHECK;
    table[0].EntryContext = &limit;
    table[0].DefaultType = REG_DWORD << RTL_QUERY_REGISTRY_TYPECHECK_SHIFT;
    CHECK(RtlQueryRegistryValues(RTL_REGISTRY_SERVICES, L"registry\\Parameters", table, NULL, NULL) ==
          STATUS_OBJECT_TYPE_MISMATCH);
    CHECK(limit == 0);
    /* A string into a caller's buffer too small for it. */
    table[0].Flags = RTL_QUERY_REGISTRY_DIRECT;
    table[0].Name = L"Name";
    table[0].EntryContext = &small;
    table[0].DefaultType = 0;
    CHECK(RtlQueryRegistryValues(RTL_REGISTRY_SERVICES, L"registry\\Parameters", table, NULL, NULL) ==
          STATUS_BUFFER_TOO_SMALL);
    /* A required value that is missing; a missing key; an optional missing key. */
    table[0].Flags = RTL_QUERY_REGISTRY_DIRECT | RTL_QUERY_REGISTRY_REQUIRED;
    table[0].Name = L"Missing";
    table[0].EntryContext = &missing;
    CHECK(RtlQueryRegistryValues(RTL_REGISTRY_SERVICES, L"registry\\Parameters", table, NULL, NULL) ==
          STATUS_OBJECT_NAME_NOT_FOUND);
    CHECK(RtlQueryRegistryValues(RTL_REGISTRY_SERVICES, L"nosuchdriver", table, NULL, NULL) ==
          STATUS_OBJECT_NAME_NOT_FOUND);
    CHECK(RtlQueryRegistryValues(RTL_REGISTRY_SERVICES | RTL_REGISTRY_OPTIONAL, L"nosuchdriver", table, NULL, NULL) ==
          STATUS_SUCCESS);
    CHECK(RtlQueryRegistryValues(9, L"x", table, NULL, NULL) == STATUS_INVALID_PARAMETER);

    /* RtlWriteRegistryValue creates the last key; RtlCheckRegistryKey finds it. */
    {
        ULONG v = 0x1234;
        CHECK(RtlCheckRegistryKey(RTL_REGISTRY_SERVICES, L"registry\\State") == STATUS_OBJECT_NAME_NOT_FOUND);
        CHECK(RtlWriteRegistryValue(RTL_REGISTRY_SERVICES, L"registry\\State", L"Count", REG_DWORD, &v, 4) == 0);
        CHECK(RtlCheckRegistryKey(RTL_REGISTRY_SERVICES, L"registry\\State") == STATUS_SUCCESS);
        v = 0;
        table[0].Flags = RTL_QUERY_REGISTRY_DIRECT;
        table[0].Name = L"Count";
        table[0].EntryContext = &v;
        CHECK(RtlQueryRegistryValues(RTL_REGISTRY_SERVICES, L"registry\\State", table, NULL, NULL) == 0);
        CHECK(v == 0x1234);
        CHECK(RtlDeleteRegistryValue(RTL_REGISTRY_SERVICES, L"registry\\State", L"Count") == 0);
        CHECK(RtlDeleteRegistryValue(RTL_REGISTRY_SERVICES, L"registry\\State", L"Count") ==
              STATUS_OBJECT_NAME_NOT_FOUND);
        CHECK(RtlCreateRegistryKey(RTL_REGISTRY_CONTROL, L"Ntmem\\Deep\\Key") == 0);
        CHECK(RtlCheckRegistryKey(RTL_REGISTRY_CONTROL, L"Ntmem\\Deep\\Key") == 0);
    }
}

static NTSTATUS AddDevice(PDRIVER_OBJECT DriverObject, PDEVICE_OBJECT Pdo)
{
    HANDLE key;
    ULONG v = 5;
    UNICODE_STRING n = Name(L"Speed");
    UNREFERENCED_PARAMETER(DriverObject);
    CHECK(IoOpenDeviceRegistryKey(Pdo, PLUGPLAY_REGKEY_DEVICE, KEY_ALL_ACCESS, &key) == 0);
    CHECK(ZwSetValueKey(key, &n, 0, REG_DWORD, &v, 4) == 0);
    ZwClose(key);
    CHECK(IoOpenDeviceRegistryKey(Pdo, PLUGPLAY_REGKEY_DRIVER, KEY_READ, &key) == 0);
    ZwClose(key);
    CHECK(IoOpenDeviceRegistryKey(Pdo, 3, KEY_READ, &key) == STATUS_INVALID_PARAMETER);
    {
        UCHAR buffer[32];
        ULONG result;
        CHECK(Open(&key, NULL, L"\\Registry\\Machine\\System\\CurrentControlSet\\Enum\\ROOT\\NTMEM\\0000\\Device "
                               L"Parameters") == 0);
        CHECK(ZwQueryValueKey(key, &n, KeyValuePartialInformation, buffer, sizeof(buffer), &result) == 0);
        ZwClose(key);
    }
    DbgPrint("reg: %lu checks, %lu failed\n", checks, failures);
    return STATUS_SUCCESS;
}

static VOID Unload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
}

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    HANDLE service, params;
    OBJECT_ATTRIBUTES oa;
    InitializeObjectAttributes(&oa, RegistryPath, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, NULL, NULL);
    CHECK(ZwOpenKey(&service, KEY_READ, &oa) == STATUS_SUCCESS);
    CHECK(Open(&params, service, L"Parameters") == STATUS_SUCCESS);
    {
        UCHAR buffer[200];
        ULONG result;
        PKEY_NAME_INFORMATION n = (PKEY_NAME_INFORMATION)buffer;
        CHECK(ZwQueryKey(params, KeyNameInformation, buffer, sizeof(buffer), &result) == 0);
        CHECK(n->NameLength == RegistryPath->Length + 22 && n->Name[RegistryPath->Length / 2 + 1] == L'P');
    }
    ValueClasses(params);
    Enumerate(params);
    SetAndDelete(params);
    CHECK(ZwClose(params) == STATUS_SUCCESS);
    CHECK(ZwClose(service) == STATUS_SUCCESS);
    QueryTable(RegistryPath);
    DriverObject->DriverExtension->AddDevice = AddDevice;
    DriverObject->DriverUnload = Unload;
    DbgPrint("reg: entry done\n");
    return STATUS_SUCCESS;
}
