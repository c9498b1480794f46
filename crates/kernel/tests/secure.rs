//! MmSecureVirtualMemory / MmUnsecureVirtualMemory (issue 11 item 5): a secured
//! range of the current process cannot be freed or lose the access it was secured
//! for until it is unsecured; bad ranges give no handle.

use ntmem_kernel::ex::pool::NtStatus;
use ntmem_kernel::mm::process::{
    ke_switch_process, nt_allocate_virtual_memory, nt_free_virtual_memory, nt_protect_virtual_memory,
    ps_create_process, AllocationType, FreeType, PageProtection,
};
use ntmem_kernel::mm::secure::{mm_secure_virtual_memory, mm_unsecure_virtual_memory, ProbeMode};
use ntmem_kernel::Machine;
use ntmem_machine::{MachineConfig, Va};

const BOTH: AllocationType = AllocationType::RESERVE.union(AllocationType::COMMIT);
const RW: PageProtection = PageProtection::ReadWrite;
const RO: PageProtection = PageProtection::ReadOnly;

fn boot() -> Machine {
    let mut config = MachineConfig::for_edition("ws03sp1-enterprise-x64").unwrap();
    config.ram = 256 << 20;
    Machine::boot(config.build().unwrap()).unwrap()
}

#[test]
fn a_secured_range_cannot_be_freed_or_made_less_accessible() {
    let m = boot();
    m.run(0, |cpu| {
        let p = ps_create_process(cpu, "app.exe").unwrap().unwrap();
        let (va, _) = nt_allocate_virtual_memory(cpu, &p, None, 0x3000, BOTH, RW).unwrap();
        assert_eq!(mm_secure_virtual_memory(cpu, va, 0x1000, ProbeMode::ReadWrite), None, "no current process");
        ke_switch_process(cpu, Some(&p))?;
        let second = Va::new(va.get() + 0x1000);
        let h = mm_secure_virtual_memory(cpu, Va::new(second.get() + 8), 16, ProbeMode::ReadWrite).expect("secured");
        let refused = Err(NtStatus::INVALID_PAGE_PROTECTION);
        assert_eq!(nt_protect_virtual_memory(cpu, &p, second, 1, RO), refused);
        assert_eq!(nt_protect_virtual_memory(cpu, &p, va, 0x3000, PageProtection::NoAccess), refused);
        assert_eq!(
            nt_free_virtual_memory(cpu, &p, second, 0x1000, FreeType::Decommit),
            Err(NtStatus::INVALID_PAGE_PROTECTION)
        );
        assert_eq!(nt_free_virtual_memory(cpu, &p, va, 0, FreeType::Release), Err(NtStatus::INVALID_PAGE_PROTECTION));
        assert_eq!(nt_protect_virtual_memory(cpu, &p, va, 0x1000, RO), Ok(RW), "the page before is not secured");
        assert_eq!(nt_protect_virtual_memory(cpu, &p, second, 1, RW), Ok(RW), "no access taken away");
        mm_unsecure_virtual_memory(cpu, h);
        assert_eq!(nt_protect_virtual_memory(cpu, &p, second, 1, RO), Ok(RW));

        // Secured for reading, the range may become read-only, not inaccessible.
        let h = mm_secure_virtual_memory(cpu, second, 0x1000, ProbeMode::ReadOnly).expect("read-only page");
        assert_eq!(nt_protect_virtual_memory(cpu, &p, second, 1, RW), Ok(RO));
        assert_eq!(nt_protect_virtual_memory(cpu, &p, second, 1, RO), Ok(RW));
        assert_eq!(nt_protect_virtual_memory(cpu, &p, second, 1, PageProtection::NoAccess), refused);
        mm_unsecure_virtual_memory(cpu, h);
        assert_eq!(nt_free_virtual_memory(cpu, &p, va, 0, FreeType::Release), Ok(()));
        Ok(())
    })
    .unwrap();
}

#[test]
fn bad_ranges_get_no_handle() {
    let m = boot();
    m.run(0, |cpu| {
        let p = ps_create_process(cpu, "app.exe").unwrap().unwrap();
        let (va, _) = nt_allocate_virtual_memory(cpu, &p, None, 0x10000, AllocationType::RESERVE, RW).unwrap();
        nt_allocate_virtual_memory(cpu, &p, Some(va), 0x1000, AllocationType::COMMIT, RO).unwrap();
        ke_switch_process(cpu, Some(&p))?;
        let secure = |at: u64, len: u64, mode| mm_secure_virtual_memory(cpu, Va::new(at), len, mode);
        assert!(secure(va.get(), 0x1000, ProbeMode::ReadOnly).is_some());
        assert_eq!(secure(va.get(), 0x1000, ProbeMode::ReadWrite), None, "read-only page secured for writing");
        assert_eq!(secure(va.get(), 0x2000, ProbeMode::ReadOnly), None, "reaches a page not committed");
        assert_eq!(secure(va.get(), 0, ProbeMode::ReadOnly), None, "empty");
        assert_eq!(secure(0x10, 0x10, ProbeMode::ReadOnly), None, "nothing there");
        let system = m.profile().layout.system_start.get();
        assert_eq!(secure(system, 0x10, ProbeMode::ReadOnly), None, "system space");
        assert_eq!(secure(u64::MAX - 4, 0x10, ProbeMode::ReadOnly), None, "wraps");
        Ok(())
    })
    .unwrap();
}
