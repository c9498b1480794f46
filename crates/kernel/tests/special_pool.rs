//! Driver Verifier's special pool (research/nt-algorithms.md §2; Microsoft "Special
//! Pool"): blocks placed against a never-mapped guard page, real faults beyond the end
//! and after free (0xCD/0xD6, 0xCC/0xD5), the pattern checked at free (0xC1 and its
//! subcodes), Verify Start, exhaustion, FIFO reuse, PoolMon, and nothing changed
//! without the verifier.

use ntmem_kernel::ex::pool::{self, PoolFlags, PoolKind, PoolPriority, PoolTag, PoolType};
use ntmem_kernel::vf::VerifierFlags;
use ntmem_kernel::{BugCheck, BugCheckCode, Cpu, Irql, Machine};
use ntmem_machine::{MachineConfig, RegionKind, Va};

const MB: u64 = 1 << 20;
const PAGE: u64 = 4096;
const TAG: PoolTag = PoolTag::new(*b"Spcl");

fn boot(edition: &str, ram: u64) -> Machine {
    let mut config = MachineConfig::for_edition(edition).unwrap();
    config.ram = ram;
    let m = Machine::boot(config.build().unwrap()).unwrap();
    m.set_verifier(VerifierFlags::SPECIAL_POOL);
    m
}

/// An x64 machine (16-byte headers) with special pool on.
fn x64() -> Machine {
    boot("ws03sp1-enterprise-x64", 512 * MB)
}

/// An x86 machine (8-byte headers) with special pool on.
fn x86() -> Machine {
    boot("xp-professional", 512 * MB)
}

fn alloc(cpu: &Cpu<'_>, t: PoolType, n: u64) -> u64 {
    pool::allocate(cpu, t, n, TAG).unwrap().expect("pool has room").get()
}

fn underrun_checked(cpu: &Cpu<'_>, n: u64) -> u64 {
    let p = PoolPriority::NormalSpecialPoolUnderrun;
    pool::allocate_with_priority(cpu, PoolType::NonPagedPool, n, TAG, p).unwrap().unwrap().get()
}

fn read(m: &Machine, va: u64, n: usize) -> Vec<u8> {
    let mut b = vec![0; n];
    m.space().read(Va::new(va), &mut b).unwrap();
    b
}

fn write(m: &Machine, va: u64, byte: u8) {
    m.space().write(Va::new(va), &[byte]).unwrap();
}

fn in_special_pool(m: &Machine, va: u64) -> bool {
    m.profile().layout.region(RegionKind::SpecialPool).unwrap().contains(Va::new(va))
}

fn mapped(m: &Machine, va: u64) -> bool {
    m.space().walk(m.phys(), Va::new(va)).phys.is_some()
}

/// The pattern byte of the block on `va`'s page (the header's BlockSize byte).
fn pattern(m: &Machine, header: u64) -> u8 {
    read(m, header, 4)[2]
}

fn stop(m: &Machine, f: impl FnOnce(&Cpu<'_>) -> Result<(), BugCheck>) -> BugCheck {
    let b = m.run(0, f).expect_err("expected a bugcheck");
    assert_eq!(m.stopped(), Some(b.clone()));
    b
}

fn assert_stop(b: &BugCheck, code: BugCheckCode, p: [u64; 4]) {
    assert_eq!((b.code, b.parameters), (code, p), "{b}");
}

/// A fault's parameters: (address, access, faulting IP, 0), the IP the real one.
fn assert_fault(b: &BugCheck, code: BugCheckCode, va: u64, access: u64) {
    let ip = b.faulting_ip.expect("a real fault has an IP");
    assert_ne!(ip, 0);
    assert_stop(b, code, [va, access, ip, 0]);
}

#[test]
fn verify_end_puts_the_block_against_a_guard_page_x64() {
    let m = x64();
    m.run(0, |cpu| {
        let va = alloc(cpu, PoolType::NonPagedPool, 100);
        let page = va & !(PAGE - 1);
        assert!(in_special_pool(&m, va), "{va:#x}");
        assert_eq!(va % PAGE, 4096 - 112, "the highest 16-byte aligned address that fits 100 bytes");
        assert!(mapped(&m, page) && !mapped(&m, page + PAGE), "data page mapped, guard page not");
        let p = pattern(&m, page);
        assert_ne!(p, 0);
        // Ulong1 = 100 with the pattern in BlockSize, PoolType 0; the tag.
        assert_eq!(read(&m, page, 8), [100, 0, p, 0, b'S', b'p', b'c', b'l']);
        let rest = read(&m, page + 8, (va - page - 8) as usize);
        assert!(rest.iter().all(|&b| b == p), "the pattern fills the page up to the block");
        assert!(read(&m, va, 112).iter().all(|&b| b == p), "the block and its 12 bytes of slack too");
        assert_eq!(pool::query_block_size(cpu, Va::new(va)).map(|s| s.bytes), Some(100));
        let paged = alloc(cpu, PoolType::PagedPool, 0xFE0);
        assert_eq!(paged % PAGE, 32, "0xFE0 bytes, the largest small block, still go to special pool");
        assert_eq!(read(&m, paged - 32, 2), [0xE0, 0x0F | 0x80], "Ulong1 = 0xFE0 | 0x8000 for paged pool");
        let big = alloc(cpu, PoolType::NonPagedPool, 0xFE1);
        assert!(!in_special_pool(&m, big), "a request that does not fit in a page with its header");
        pool::free(cpu, Va::new(va), Some(TAG))?;
        pool::free(cpu, Va::new(paged), None)?;
        pool::free(cpu, Va::new(big), None)
    })
    .unwrap();
    let u = m.pool().special().usage();
    assert_eq!((u.allocations, u.fallbacks, u.live), (2, 0, 0));
}

#[test]
fn verify_end_keeps_8_byte_alignment_on_x86() {
    let m = x86();
    m.run(0, |cpu| {
        let va = alloc(cpu, PoolType::NonPagedPool, 100);
        assert!(in_special_pool(&m, va));
        assert_eq!(va % PAGE, 4096 - 104);
        let page = va & !(PAGE - 1);
        let p = pattern(&m, page);
        // x86's packed header: bits 0-15 = 100, bits 16-24 (BlockSize) = the pattern.
        assert_eq!(read(&m, page, 8), [100, 0, p, 0, b'S', b'p', b'c', b'l']);
        assert_eq!(alloc(cpu, PoolType::PagedPool, 0xFF0) % PAGE, 16, "0xFF0 is the x86 limit");
        assert!(!in_special_pool(&m, alloc(cpu, PoolType::PagedPool, 0xFF1)));
        pool::free(cpu, Va::new(va), None)
    })
    .unwrap();
}

#[test]
fn one_byte_past_the_end_faults_at_once_0xcd() {
    let m = x64();
    let mut va = 0;
    let b = stop(&m, |cpu| {
        va = alloc(cpu, PoolType::NonPagedPool, 64);
        assert_eq!((va + 64) % PAGE, 0, "64 bytes end exactly at the guard page");
        m.space().write(Va::new(va), &[1; 64]).unwrap();
        write(&m, va + 64, 1);
        unreachable!("the write faults");
    });
    assert_fault(&b, BugCheckCode::PAGE_FAULT_BEYOND_END_OF_ALLOCATION, va + 64, 1);
    assert!(b.analysis().contains("PAGE_FAULT_BEYOND_END_OF_ALLOCATION (cd)"));
}

#[test]
fn a_driver_reading_past_the_end_is_named_by_0xd6_even_at_dispatch_level() {
    let m = x64();
    m.images().load("overrun.sys", 0, usize::MAX).unwrap();
    let mut va = 0;
    let b = stop(&m, |cpu| {
        va = alloc(cpu, PoolType::NonPagedPool, 32);
        cpu.raise_irql(Irql::DISPATCH)?;
        read(&m, va + 32, 1);
        unreachable!("the read faults");
    });
    assert_fault(&b, BugCheckCode::DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION, va + 32, 0);
    assert_eq!(b.driver.as_deref(), Some("overrun.sys"));
}

#[test]
fn verify_start_faults_on_an_underrun() {
    let m = x64();
    let mut va = 0;
    let b = stop(&m, |cpu| {
        va = underrun_checked(cpu, 100);
        assert!(in_special_pool(&m, va));
        assert_eq!(va % PAGE, 0, "Verify Start: the block starts its page");
        assert!(!mapped(&m, va - PAGE), "the guard page is before it");
        let p = pattern(&m, va + PAGE - 16);
        assert_eq!(read(&m, va + PAGE - 16, 8), [100, 0, p, 0, b'S', b'p', b'c', b'l'], "the header ends the page");
        write(&m, va - 1, 0);
        unreachable!("the write faults");
    });
    assert_fault(&b, BugCheckCode::PAGE_FAULT_BEYOND_END_OF_ALLOCATION, va - 1, 1);
}

#[test]
fn verify_start_finds_an_overrun_at_free() {
    let m = x64();
    let mut va = 0;
    let mut p = 0;
    let b = stop(&m, |cpu| {
        va = underrun_checked(cpu, 100);
        p = pattern(&m, va + PAGE - 16);
        write(&m, va + 100, !p);
        pool::free(cpu, Va::new(va), None)
    });
    assert_stop(&b, BugCheckCode::SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION, [va, va + 100, u64::from(p), 0x24]);
}

#[test]
fn an_underrun_is_found_at_free_0xc1_0x23() {
    let m = x86();
    let (mut va, mut p) = (0, 0);
    let b = stop(&m, |cpu| {
        va = alloc(cpu, PoolType::PagedPool, 200);
        p = pattern(&m, va & !(PAGE - 1));
        write(&m, va - 3, !p);
        write(&m, va - 1, !p);
        pool::free(cpu, Va::new(va), None)
    });
    let corrupt = va - 3;
    assert_stop(&b, BugCheckCode::SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION, [va, corrupt, u64::from(p), 0x23]);
}

#[test]
fn an_overrun_into_the_slack_is_found_at_free_0xc1_0x24() {
    let m = x64();
    let (mut va, mut p) = (0, 0);
    let b = stop(&m, |cpu| {
        va = alloc(cpu, PoolType::NonPagedPool, 100);
        p = pattern(&m, va & !(PAGE - 1));
        write(&m, va + 100, !p);
        pool::free(cpu, Va::new(va), None)
    });
    assert_stop(&b, BugCheckCode::SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION, [va, va + 100, u64::from(p), 0x24]);
}

#[test]
fn one_flipped_bit_is_a_single_bit_error_0x32() {
    let m = x64();
    let (mut va, mut p) = (0, 0);
    let b = stop(&m, |cpu| {
        va = alloc(cpu, PoolType::NonPagedPool, 100);
        p = pattern(&m, va & !(PAGE - 1));
        write(&m, va - 40, p ^ 0x10);
        pool::free(cpu, Va::new(va), None)
    });
    assert_stop(&b, BugCheckCode::SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION, [va, va - 40, u64::from(p), 0x32]);
}

#[test]
fn freeing_the_wrong_address_is_0xc1_0x21_or_0x22() {
    let m = x64();
    let mut va = 0;
    let b = stop(&m, |cpu| {
        va = alloc(cpu, PoolType::NonPagedPool, 100);
        pool::free(cpu, Va::new(va + 16), None)
    });
    let end = (va & !(PAGE - 1)) + PAGE;
    assert_stop(&b, BugCheckCode::SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION, [va + 16, 100, end - va - 16, 0x21]);

    let m = x64();
    let b = stop(&m, |cpu| {
        va = alloc(cpu, PoolType::NonPagedPool, 100);
        pool::free(cpu, Va::new(va - 16), None)
    });
    let end = (va & !(PAGE - 1)) + PAGE;
    assert_stop(&b, BugCheckCode::SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION, [va - 16, 100, end - va + 16, 0x22]);
}

#[test]
fn use_after_free_faults_0xcc_and_0xd5_for_a_driver() {
    for driver in [None, Some("stale.sys")] {
        let m = x64();
        if let Some(name) = driver {
            m.images().load(name, 0, usize::MAX).unwrap();
        }
        let mut va = 0;
        let b = stop(&m, |cpu| {
            va = alloc(cpu, PoolType::PagedPool, 100);
            pool::free(cpu, Va::new(va), Some(TAG))?;
            assert!(!mapped(&m, va), "freed special pool is unmapped");
            read(&m, va + 8, 1);
            unreachable!("the read faults");
        });
        let code = match driver {
            None => BugCheckCode::PAGE_FAULT_IN_FREED_SPECIAL_POOL,
            Some(_) => BugCheckCode::DRIVER_PAGE_FAULT_IN_FREED_SPECIAL_POOL,
        };
        assert_fault(&b, code, va + 8, 0);
        assert_eq!(b.driver.as_deref(), driver);
    }
}

#[test]
fn a_double_free_is_0xc1_0x20() {
    let m = x64();
    let mut va = 0;
    let b = stop(&m, |cpu| {
        va = alloc(cpu, PoolType::NonPagedPool, 100);
        pool::free(cpu, Va::new(va), None)?;
        pool::free(cpu, Va::new(va), None)
    });
    assert_stop(&b, BugCheckCode::SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION, [va, 0, 0, 0x20]);
}

#[test]
fn bad_irql_is_0xc1_0x30_at_allocation_and_0x31_at_free() {
    let m = x64();
    let b = stop(&m, |cpu| {
        cpu.raise_irql(Irql::DISPATCH)?;
        pool::allocate(cpu, PoolType::PagedPool, 100, TAG).map(|_| ())
    });
    assert_stop(&b, BugCheckCode::SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION, [2, 1, 100, 0x30]);

    let m = x64();
    let mut va = 0;
    let b = stop(&m, |cpu| {
        va = alloc(cpu, PoolType::PagedPool, 100);
        cpu.raise_irql(Irql::DISPATCH)?;
        pool::free(cpu, Va::new(va), None)
    });
    assert_stop(&b, BugCheckCode::SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION, [2, 1, va, 0x31]);
}

#[test]
fn a_protected_tag_freed_with_another_is_bad_pool_caller_0xa() {
    let m = x64();
    let mut va = 0;
    let b = stop(&m, |cpu| {
        va = pool::allocate(cpu, PoolType::NonPagedPool, 100, TAG.protected())?.unwrap().get();
        pool::free(cpu, Va::new(va), None)
    });
    assert_stop(&b, BugCheckCode::BAD_POOL_CALLER, [0xA, va, u64::from(TAG.protected().0), 0]);
}

#[test]
fn exhaustion_falls_back_to_normal_pool_silently() {
    // 64 MB: the limit is the RAM rule (1/16 or 1/8 of the pages), below the host's.
    let m = boot("ws03sp1-enterprise-x64", 64 * MB);
    let limit = m.pool().special().usage().limit;
    let pages = m.profile().physmap.usable_ram() / PAGE;
    assert_eq!(limit, pages / if pages > 0x3FFF { 8 } else { 16 });
    m.run(0, |cpu| {
        let held: Vec<u64> = (0..limit).map(|_| alloc(cpu, PoolType::NonPagedPool, 24)).collect();
        assert!(held.iter().all(|&va| in_special_pool(&m, va)));
        let extra = alloc(cpu, PoolType::NonPagedPool, 24);
        assert!(!in_special_pool(&m, extra), "served by normal pool");
        pool::free(cpu, Va::new(held[0]), None)?;
        let again = alloc(cpu, PoolType::NonPagedPool, 24);
        assert!(in_special_pool(&m, again), "room again once one is freed");
        for va in held.into_iter().skip(1).chain([extra, again]) {
            pool::free(cpu, Va::new(va), None)?;
        }
        Ok(())
    })
    .unwrap();
    let u = m.pool().special().usage();
    assert_eq!((u.allocations, u.fallbacks, u.live), (limit + 1, 1, 0));
}

#[test]
fn freed_pairs_are_reused_first_in_first_out() {
    let m = boot("xp-professional", 64 * MB);
    let region = *m.profile().layout.region(RegionKind::SpecialPool).unwrap();
    let pairs = region.size / PAGE / 2;
    m.run(0, |cpu| {
        let first = alloc(cpu, PoolType::NonPagedPool, 100);
        assert_eq!(first & !(PAGE - 1), region.start.get(), "pair 0 first");
        pool::free(cpu, Va::new(first), None)?;
        let second = alloc(cpu, PoolType::NonPagedPool, 100);
        assert_eq!(second & !(PAGE - 1), region.start.get() + 2 * PAGE, "not the page just freed");
        pool::free(cpu, Va::new(second), None)?;
        for _ in 2..pairs {
            let va = alloc(cpu, PoolType::NonPagedPool, 100);
            pool::free(cpu, Va::new(va), None)?;
        }
        // Every pair used once: the oldest freed comes back first.
        assert_eq!(alloc(cpu, PoolType::NonPagedPool, 100), first);
        assert_eq!(alloc(cpu, PoolType::NonPagedPool, 100), second);
        Ok(())
    })
    .unwrap();
}

#[test]
fn poolmon_counts_special_blocks_as_normal_pool_would() {
    let rows = |verifier: VerifierFlags| {
        let m = x64();
        m.set_verifier(verifier);
        m.run(0, |cpu| {
            let a = alloc(cpu, PoolType::NonPagedPool, 100);
            let b = alloc(cpu, PoolType::PagedPool, 10);
            pool::free(cpu, Va::new(a), None)?;
            assert_eq!(in_special_pool(&m, b), verifier == VerifierFlags::SPECIAL_POOL);
            Ok(())
        })
        .unwrap();
        let rows: Vec<_> = m.pool().snapshot().into_iter().filter(|r| r.tag == TAG).collect();
        (rows, m.pool().special().usage().allocations)
    };
    let (special, count) = rows(VerifierFlags::SPECIAL_POOL);
    assert_eq!(count, 2);
    assert_eq!(special.len(), 2);
    let np = special.iter().find(|r| r.pool_type == PoolKind::Nonpaged).unwrap();
    assert_eq!((np.allocs, np.frees, np.bytes), (1, 1, 0));
    let paged = special.iter().find(|r| r.pool_type == PoolKind::Paged).unwrap();
    assert_eq!((paged.allocs, paged.frees, paged.bytes), (1, 0, 32));
    assert_eq!(rows(VerifierFlags::empty()), (special, 0), "the same rows without the verifier");
}

#[test]
fn zeroed_charged_and_cache_aligned_requests() {
    let m = x64();
    m.run(0, |cpu| {
        let z = pool::allocate2(cpu, PoolFlags::NON_PAGED, 40, TAG, None)?.unwrap().unwrap().get();
        assert!(in_special_pool(&m, z));
        assert_eq!(read(&m, z, 40), [0; 40], "ExAllocatePool2 zeroes");
        let p = pattern(&m, z & !(PAGE - 1));
        assert_eq!(read(&m, z + 40, 8), [p; 8], "the slack keeps the pattern");
        let aligned = alloc(cpu, PoolType::NonPagedPoolCacheAligned, 40);
        assert!(!in_special_pool(&m, aligned) && aligned.is_multiple_of(64), "cache-aligned types keep normal pool");
        let q = m.pool().create_quota_process("app.exe", 1 << 20, 1 << 20);
        let on_failure = pool::OnQuotaFailure::ReturnNull;
        let charged = pool::allocate_with_quota(cpu, PoolType::PagedPool, 40, TAG, &q, on_failure)?.unwrap().unwrap();
        assert!(!in_special_pool(&m, charged.get()), "charged allocations keep normal pool");
        Ok(())
    })
    .unwrap();
}

#[test]
fn without_the_verifier_nothing_changes() {
    let m = x64();
    m.set_verifier(VerifierFlags::FORCE_IRQL_CHECKING);
    m.run(0, |cpu| {
        let va = alloc(cpu, PoolType::NonPagedPool, 100);
        let under = underrun_checked(cpu, 100);
        assert!(!in_special_pool(&m, va) && !in_special_pool(&m, under));
        assert_eq!(pool::header_of(cpu, Va::new(va)).tag, TAG.0);
        pool::free(cpu, Va::new(va), None)?;
        pool::free(cpu, Va::new(under), None)
    })
    .unwrap();
    assert_eq!(m.pool().special().usage().allocations, 0);
}
