//! Environment strings: `%NAME%` references in REG_EXPAND_SZ values, expanded as
//! `RtlExpandEnvironmentStrings_U` expands them (learn.microsoft.com,
//! "RTL_QUERY_REGISTRY_TABLE structure": RtlQueryRegistryValues expands
//! REG_EXPAND_SZ values unless RTL_QUERY_REGISTRY_NOEXPAND, from its `Environment`
//! argument).
//!
//! A name matches without regard to case; a reference to a name the environment
//! lacks stays as written, `%` signs included, as Windows leaves it (the
//! ExpandEnvironmentStrings page). An environment block is what Windows keeps:
//! `NAME=VALUE` strings, each ending in NUL, the block in an empty one.
//!
//! **Where it differs.** With no `Environment` argument, the variables come from
//! [`system_environment`] — `SystemRoot`, `windir` and `SystemDrive` of the
//! edition's default installation. Windows documents no environment for the System
//! process; these are the variables REG_EXPAND_SZ values in the services key use.

use ntmem_machine::{Edition, Release};

/// One variable: name and value, UTF-16 without terminators.
pub type Variable = (Vec<u16>, Vec<u16>);

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

/// The variables RtlQueryRegistryValues expands with when the driver gives none:
/// `SystemRoot` and `windir` are `C:\WINNT` on Windows 2000 and `C:\WINDOWS` after
/// (the default installation directories), `SystemDrive` is `C:`.
pub fn system_environment(edition: &Edition) -> Vec<Variable> {
    let root = if edition.release == Release::Windows2000 { "C:\\WINNT" } else { "C:\\WINDOWS" };
    [("SystemRoot", root), ("windir", root), ("SystemDrive", "C:")].iter().map(|(n, v)| (wide(n), wide(v))).collect()
}

/// The variables of an environment block (`NAME=VALUE\0…\0\0`), in order; a string
/// without `=` after its first character is skipped (Windows keeps `=C:=C:\` style
/// names, whose `=` is the first character).
pub fn parse_block(block: &[u16]) -> Vec<Variable> {
    block
        .split(|&c| c == 0)
        .take_while(|s| !s.is_empty())
        .filter_map(|s| {
            let eq = s.iter().skip(1).position(|&c| c == u16::from(b'='))? + 1;
            Some((s[..eq].to_vec(), s[eq + 1..].to_vec()))
        })
        .collect()
}

fn same_name(a: &[u16], b: &[u16]) -> bool {
    let up = |c: &u16| char::from_u32(u32::from(*c)).map_or(*c as u32, |c| c.to_ascii_uppercase() as u32);
    a.len() == b.len() && a.iter().map(up).eq(b.iter().map(up))
}

/// `s` with each `%NAME%` whose name `env` holds replaced by its value.
pub fn expand(s: &[u16], env: &[Variable]) -> Vec<u16> {
    const PERCENT: u16 = b'%' as u16;
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.iter().position(|&c| c == PERCENT) {
        out.extend_from_slice(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.iter().position(|&c| c == PERCENT) else {
            out.extend_from_slice(&rest[open..]);
            return out;
        };
        let name = &after[..close];
        match env.iter().find(|(n, _)| !name.is_empty() && same_name(n, name)) {
            Some((_, value)) => {
                out.extend_from_slice(value);
                rest = &after[close + 1..];
            }
            None => {
                // Not a variable: the first `%` stays; the second may open one.
                out.push(PERCENT);
                out.extend_from_slice(name);
                rest = &after[close..];
            }
        }
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: &[u16]) -> String {
        String::from_utf16_lossy(v)
    }

    #[test]
    fn references_expand_without_regard_to_case_and_unknown_ones_stay() {
        let env = parse_block(&wide("SystemRoot=C:\\WINDOWS\0=C:=C:\\\0Empty=\0\0Ignored=after the end\0"));
        assert_eq!(env.len(), 3, "{env:?}");
        assert_eq!(text(&expand(&wide("%systemroot%\\System32"), &env)), "C:\\WINDOWS\\System32");
        assert_eq!(text(&expand(&wide("a%Empty%b"), &env)), "ab");
        assert_eq!(text(&expand(&wide("%Nope%\\%SystemRoot%"), &env)), "%Nope%\\C:\\WINDOWS");
        assert_eq!(text(&expand(&wide("100% sure %SystemRoot%"), &env)), "100% sure C:\\WINDOWS");
        assert_eq!(text(&expand(&wide("50%%SystemRoot%"), &env)), "50%C:\\WINDOWS");
        assert_eq!(text(&expand(&wide("%Ignored%"), &env)), "%Ignored%");
        assert_eq!(text(&expand(&wide("trailing %"), &env)), "trailing %");
    }

    #[test]
    fn the_system_root_follows_the_release() {
        let find = |key| ntmem_machine::find_edition(key).unwrap();
        let root = |key| text(&expand(&wide("%SystemRoot%"), &system_environment(find(key))));
        assert_eq!(root("w2k-professional"), "C:\\WINNT");
        assert_eq!(root("xp-professional"), "C:\\WINDOWS");
    }
}
