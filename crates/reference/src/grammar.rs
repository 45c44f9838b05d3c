//! The pieces of the docker reference grammar (distribution/reference), checked
//! by hand. The grammar is small and regular; a hand-written checker needs no
//! regex crate and can say precisely which part is wrong, which a failed regex
//! match cannot.
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [domain "/"] path-component ["/" path-component]*
//! domain           := host [":" port]
//! host             := domain-component ["." domain-component]* | "[" ipv6 "]"
//! domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//! path-component   := [a-z0-9]+ (separator [a-z0-9]+)*
//! separator        := "." | "_" | "__" | "-"+
//! tag              := [\w][\w.-]{0,127}
//! ```

use std::net::Ipv6Addr;

/// Longest tag the grammar allows.
pub(crate) const TAG_MAX_LEN: usize = 128;

/// Why a path component is invalid. Uppercase is kept apart because docker
/// reports it with its own, friendlier message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PathProblem {
    Uppercase,
    Invalid(String),
}

/// Checks one `/`-separated path component of a repository name.
pub(crate) fn check_path_component(component: &str) -> Result<(), PathProblem> {
    // Structure is judged on the lowercased text: if only case is wrong, the
    // user gets the uppercase message, as docker does.
    let lowered = component.to_ascii_lowercase();
    check_lowercase_path_component(&lowered).map_err(PathProblem::Invalid)?;
    if lowered != component {
        return Err(PathProblem::Uppercase);
    }
    Ok(())
}

fn check_lowercase_path_component(component: &str) -> Result<(), String> {
    if component.is_empty() {
        return Err("is empty (two slashes in a row, or a leading or trailing slash)".to_owned());
    }
    if let Some(bad) = component
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-'))
    {
        return Err(format!(
            "contains {bad:?}; allowed are lowercase letters, digits and the separators '.', '_', '__' and '-'"
        ));
    }
    let is_alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !component.starts_with(is_alnum) {
        return Err("must start with a lowercase letter or digit".to_owned());
    }
    if !component.ends_with(is_alnum) {
        return Err("must end with a lowercase letter or digit".to_owned());
    }
    // Between alphanumeric runs, each run of separator characters must be
    // exactly ".", "_", "__", or one or more "-".
    for run in component.split(is_alnum).filter(|run| !run.is_empty()) {
        let valid = matches!(run, "." | "_" | "__") || run.chars().all(|c| c == '-');
        if !valid {
            return Err(format!(
                "has the separator {run:?}; allowed separators are '.', '_', '__' and runs of '-'"
            ));
        }
    }
    Ok(())
}

/// Checks a registry domain: a host name, IPv4 or bracketed IPv6 address,
/// with an optional port.
pub(crate) fn check_domain(domain: &str) -> Result<(), String> {
    let port = if let Some(rest) = domain.strip_prefix('[') {
        let Some((address, after)) = rest.split_once(']') else {
            return Err("has '[' without a closing ']'".to_owned());
        };
        check_ipv6(address)?;
        match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Err(format!("has {after:?} after the IPv6 address")),
            },
        }
    } else {
        let (host, port) = match domain.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (domain, None),
        };
        check_host_name(host)?;
        port
    };
    match port {
        Some(port) => check_port(port),
        None => Ok(()),
    }
}

fn check_ipv6(address: &str) -> Result<(), String> {
    // The grammar allows only hex digits and colons (no zones, no embedded
    // IPv4); the standard parser then rejects shapes like "[::::]".
    let charset_ok =
        !address.is_empty() && address.chars().all(|c| c.is_ascii_hexdigit() || c == ':');
    if !charset_ok || address.parse::<Ipv6Addr>().is_err() {
        return Err(format!(
            "has {address:?} in brackets, which is not an IPv6 address"
        ));
    }
    Ok(())
}

fn check_host_name(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("has an empty host name".to_owned());
    }
    for label in host.split('.') {
        if label.is_empty() {
            return Err(
                "has an empty label (two dots in a row, or a leading or trailing dot)".to_owned(),
            );
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(format!(
                "contains {bad:?}; host names allow letters, digits, '-' and '.'"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "has the label {label:?}, which starts or ends with '-'"
            ));
        }
    }
    Ok(())
}

fn check_port(port: &str) -> Result<(), String> {
    let numeric = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    match port.parse::<u32>() {
        Ok(value) if numeric && (1..=65535).contains(&value) => Ok(()),
        _ => Err(format!(
            "has the port {port:?}; a port is a number from 1 to 65535"
        )),
    }
}

/// Checks a tag: `[\w][\w.-]{0,127}`.
pub(crate) fn check_tag(tag: &str) -> Result<(), String> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if tag.is_empty() {
        return Err("is empty".to_owned());
    }
    if let Some(bad) = tag
        .chars()
        .find(|c| !(is_word(*c) || *c == '.' || *c == '-'))
    {
        return Err(format!(
            "contains {bad:?}; tags allow letters, digits, '_', '.' and '-'"
        ));
    }
    if !tag.starts_with(is_word) {
        return Err("must start with a letter, digit or '_'".to_owned());
    }
    if tag.len() > TAG_MAX_LEN {
        return Err(format!(
            "is {} characters long; at most {TAG_MAX_LEN} are allowed",
            tag.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_components() {
        for ok in [
            "a",
            "redis",
            "a.b",
            "a_b",
            "a__b",
            "a-b",
            "a---b",
            "0",
            "a1.b2_c3__d4-e5",
        ] {
            assert_eq!(check_path_component(ok), Ok(()), "{ok:?}");
        }
        let bad: &[(&str, &str)] = &[
            (
                "",
                "is empty (two slashes in a row, or a leading or trailing slash)",
            ),
            (".a", "must start with a lowercase letter or digit"),
            ("-a", "must start with a lowercase letter or digit"),
            ("a.", "must end with a lowercase letter or digit"),
            ("a_", "must end with a lowercase letter or digit"),
            (
                "a..b",
                "has the separator \"..\"; allowed separators are '.', '_', '__' and runs of '-'",
            ),
            (
                "a___b",
                "has the separator \"___\"; allowed separators are '.', '_', '__' and runs of '-'",
            ),
            (
                "a.-b",
                "has the separator \".-\"; allowed separators are '.', '_', '__' and runs of '-'",
            ),
            (
                "a+b",
                "contains '+'; allowed are lowercase letters, digits and the separators '.', '_', '__' and '-'",
            ),
            (
                "ä",
                "contains 'ä'; allowed are lowercase letters, digits and the separators '.', '_', '__' and '-'",
            ),
        ];
        for (input, reason) in bad {
            assert_eq!(
                check_path_component(input),
                Err(PathProblem::Invalid((*reason).to_owned())),
                "{input:?}"
            );
        }
        assert_eq!(check_path_component("Redis"), Err(PathProblem::Uppercase));
        // Structure errors win over case errors, as in docker.
        assert!(matches!(
            check_path_component("A."),
            Err(PathProblem::Invalid(_))
        ));
    }

    #[test]
    fn domains() {
        for ok in [
            "docker.io",
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "Registry.Example.COM",
            "a-b.c",
            "xn--bcher-kva.example",
            "[::1]",
            "[::1]:5000",
            "[2001:db8::1]",
            "[2001:DB8:0:0:0:0:0:1]:443",
            "r:65535",
        ] {
            assert_eq!(check_domain(ok), Ok(()), "{ok:?}");
        }
        let bad: &[(&str, &str)] = &[
            ("", "has an empty host name"),
            (":5000", "has an empty host name"),
            (
                "a..b",
                "has an empty label (two dots in a row, or a leading or trailing dot)",
            ),
            (
                ".a",
                "has an empty label (two dots in a row, or a leading or trailing dot)",
            ),
            (
                "-a.b",
                "has the label \"-a\", which starts or ends with '-'",
            ),
            (
                "a-.b",
                "has the label \"a-\", which starts or ends with '-'",
            ),
            (
                "a_b.c",
                "contains '_'; host names allow letters, digits, '-' and '.'",
            ),
            (
                "a.b:",
                "has the port \"\"; a port is a number from 1 to 65535",
            ),
            (
                "a.b:x",
                "has the port \"x\"; a port is a number from 1 to 65535",
            ),
            (
                "a.b:0",
                "has the port \"0\"; a port is a number from 1 to 65535",
            ),
            (
                "a.b:65536",
                "has the port \"65536\"; a port is a number from 1 to 65535",
            ),
            (
                "a.b:+80",
                "has the port \"+80\"; a port is a number from 1 to 65535",
            ),
            (
                "a.b:99999999999",
                "has the port \"99999999999\"; a port is a number from 1 to 65535",
            ),
            (
                "a:1:2",
                "has the port \"1:2\"; a port is a number from 1 to 65535",
            ),
            ("[::1", "has '[' without a closing ']'"),
            ("[]", "has \"\" in brackets, which is not an IPv6 address"),
            (
                "[::::]",
                "has \"::::\" in brackets, which is not an IPv6 address",
            ),
            (
                "[::ffff:1.2.3.4]",
                "has \"::ffff:1.2.3.4\" in brackets, which is not an IPv6 address",
            ),
            (
                "[fe80::1%eth0]",
                "has \"fe80::1%eth0\" in brackets, which is not an IPv6 address",
            ),
            ("[::1]x", "has \"x\" after the IPv6 address"),
            (
                "[::1]:",
                "has the port \"\"; a port is a number from 1 to 65535",
            ),
        ];
        for (input, reason) in bad {
            assert_eq!(check_domain(input), Err((*reason).to_owned()), "{input:?}");
        }
    }

    #[test]
    fn tags() {
        let longest = "a".repeat(TAG_MAX_LEN);
        for ok in ["latest", "7", "_x", "V1.2-rc_3", "a.b-c", longest.as_str()] {
            assert_eq!(check_tag(ok), Ok(()), "{ok:?}");
        }
        let too_long = "a".repeat(TAG_MAX_LEN + 1);
        let bad: &[(&str, &str)] = &[
            ("", "is empty"),
            (".a", "must start with a letter, digit or '_'"),
            ("-a", "must start with a letter, digit or '_'"),
            (
                "a+b",
                "contains '+'; tags allow letters, digits, '_', '.' and '-'",
            ),
            (
                "a/b",
                "contains '/'; tags allow letters, digits, '_', '.' and '-'",
            ),
            (
                too_long.as_str(),
                "is 129 characters long; at most 128 are allowed",
            ),
        ];
        for (input, reason) in bad {
            assert_eq!(check_tag(input), Err((*reason).to_owned()), "{input:?}");
        }
    }
}
