//! Symbolic links in the object namespace, as `IoCreateSymbolicLink` and
//! `IoDeleteSymbolicLink` keep them (learn.microsoft.com, "IoCreateSymbolicLink
//! function (wdm.h)", "IoDeleteSymbolicLink function (wdm.h)"): a link name such
//! as `\DosDevices\IoctlTest` names a device such as `\Device\IoctlTest`, so a
//! user-mode `CreateFile("\\.\IoctlTest")` reaches the device.
//!
//! `\DosDevices` is itself a link to `\??` on Windows, so `\DosDevices\X` and
//! `\??\X` are one link; names compare without case (the object manager looks
//! links up case-insensitively). A link is permanent: it outlives the driver that
//! created it unless the driver deletes it, which the run's report lists.
//!
//! Where ntmem differs: only the link table is modelled — the target is not
//! resolved (no object directories, no `\GLOBAL??`), and links are not yet used
//! to open devices.

use std::collections::BTreeMap;

use crate::ex::pool::NtStatus;
use crate::rtl::string::upcase;

impl NtStatus {
    /// `STATUS_OBJECT_NAME_NOT_FOUND`: `IoDeleteSymbolicLink` of a name that is
    /// not a link.
    pub const OBJECT_NAME_NOT_FOUND: NtStatus = NtStatus(0xC000_0034);
    /// `STATUS_OBJECT_NAME_COLLISION`: `IoCreateSymbolicLink` of a name that
    /// exists.
    pub const OBJECT_NAME_COLLISION: NtStatus = NtStatus(0xC000_0035);
    /// `STATUS_OBJECT_NAME_INVALID`: an empty name.
    pub const OBJECT_NAME_INVALID: NtStatus = NtStatus(0xC000_0033);
}

/// A symbolic link as created.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SymbolicLink {
    /// The link's name as the driver gave it.
    pub name: String,
    /// The device name it points to.
    pub target: String,
}

/// The machine's symbolic links, by canonical name.
#[derive(Debug, Default)]
pub struct SymbolicLinks {
    links: BTreeMap<Vec<u16>, SymbolicLink>,
}

/// The lookup key: `\DosDevices\` read as `\??\`, upcased.
fn canonical(name: &[u16]) -> Vec<u16> {
    const DOS_DEVICES: &str = "\\DOSDEVICES\\";
    let upper: Vec<u16> = name.iter().map(|&c| upcase(c)).collect();
    let prefix: Vec<u16> = DOS_DEVICES.encode_utf16().collect();
    match upper.strip_prefix(prefix.as_slice()) {
        Some(rest) => "\\??\\".encode_utf16().chain(rest.iter().copied()).collect(),
        None => upper,
    }
}

impl SymbolicLinks {
    /// `IoCreateSymbolicLink(link, target)`.
    ///
    /// # Errors
    /// `STATUS_OBJECT_NAME_COLLISION` when the link exists;
    /// `STATUS_OBJECT_NAME_INVALID` for an empty name.
    pub fn create(&mut self, link: &[u16], target: &[u16]) -> Result<(), NtStatus> {
        if link.is_empty() {
            return Err(NtStatus::OBJECT_NAME_INVALID);
        }
        let key = canonical(link);
        if self.links.contains_key(&key) {
            return Err(NtStatus::OBJECT_NAME_COLLISION);
        }
        let name = String::from_utf16_lossy(link);
        self.links.insert(key, SymbolicLink { name, target: String::from_utf16_lossy(target) });
        Ok(())
    }

    /// `IoDeleteSymbolicLink(link)`.
    ///
    /// # Errors
    /// `STATUS_OBJECT_NAME_NOT_FOUND` when there is no such link.
    pub fn delete(&mut self, link: &[u16]) -> Result<SymbolicLink, NtStatus> {
        self.links.remove(&canonical(link)).ok_or(NtStatus::OBJECT_NAME_NOT_FOUND)
    }

    /// The target of `link`, if it is a link.
    pub fn target(&self, link: &[u16]) -> Option<&str> {
        self.links.get(&canonical(link)).map(|l| l.target.as_str())
    }

    /// Every link, by canonical name: at the end of a run, the links its driver
    /// left behind (a run loads one driver).
    pub fn all(&self) -> Vec<SymbolicLink> {
        self.links.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn a_link_exists_once_under_either_dos_devices_spelling() {
        let mut t = SymbolicLinks::default();
        assert_eq!(t.create(&w("\\DosDevices\\IoctlTest"), &w("\\Device\\SIOCTL")), Ok(()));
        assert_eq!(t.target(&w("\\??\\ioctltest")), Some("\\Device\\SIOCTL"));
        assert_eq!(t.create(&w("\\??\\IOCTLTEST"), &w("\\Device\\Other")), Err(NtStatus::OBJECT_NAME_COLLISION));
        assert_eq!(t.all().len(), 1);
        assert_eq!(t.delete(&w("\\dosdevices\\IoctlTest")).map(|l| l.name), Ok("\\DosDevices\\IoctlTest".to_string()));
        assert_eq!(t.delete(&w("\\DosDevices\\IoctlTest")), Err(NtStatus::OBJECT_NAME_NOT_FOUND));
        assert_eq!(t.all(), Vec::new());
        assert_eq!(t.create(&[], &w("\\Device\\X")), Err(NtStatus::OBJECT_NAME_INVALID));
    }
}
