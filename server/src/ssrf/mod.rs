//! The SSRF policy for upstreams chosen by a caller (`openai-compatible` base URLs): which URLs may
//! be stored, which addresses a host may resolve to, and the one HTTP client allowed to reach them.
//!
//! Two layers, both needed:
//! - [`check_base_url`] parses the URL the way a browser does (WHATWG: decimal, hex, octal and short
//!   IPv4 spellings, percent-encoding, IDNA, trailing dots) and refuses forbidden schemes, userinfo,
//!   queries, fragments, names and literal addresses. No DNS. Literal IP hosts never reach a DNS
//!   resolver (hyper connects to them directly), so this check is the only guard for them: build
//!   every request URL from a [`CheckedUrl`] (see [`CheckedUrl::join`]).
//! - [`client`] builds a reqwest client whose resolver ([`PolicyResolver`]) checks every resolved
//!   address and hands hyper only checked addresses, so the address checked is the address connected
//!   (no DNS rebinding between check and connect). Redirects are never followed and proxies are off.
//!
//! Policy choices:
//! - `allow_private` admits private networks (RFC 1918, CGNAT 100.64/10, ULA fc00::/7, site-local,
//!   `.internal`/`.local` names, single-label names) but never loopback, link-local or cloud metadata
//!   endpoints: those need an exact allow-list entry. A relay with `allow_private` must still not
//!   hand out IAM credentials from 169.254.169.254 or reach services bound to its own loopback.
//! - IPv4-mapped (`::ffff:a.b.c.d`) and NAT64 well-known-prefix (`64:ff9b::a.b.c.d`) addresses are
//!   judged by the IPv4 address they carry, so IPv6-only hosts behind DNS64 keep working while
//!   `[::ffff:127.0.0.1]` and `[64:ff9b::a9fe:a9fe]` are refused. The local-use NAT64 prefix
//!   64:ff9b:1::/48, 6to4 2002::/16, Teredo 2001::/32 and IPv4-compatible ::/96 are refused whole:
//!   they are deprecated or site-specific and no public API lives there.
//! - An allow-listed host (exact name or IP literal, set by the operator) skips the name and address
//!   checks and may use plain http; nothing else may.

use std::collections::BTreeSet;
use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// Environment variable: comma-separated hosts (names or IP literals) exempt from the address checks.
pub const ENV_ALLOW_HOSTS: &str = "RELAY_ALLOW_UPSTREAM_HOSTS";
/// Environment variable: `true` admits private-network upstreams (never loopback or metadata).
pub const ENV_ALLOW_PRIVATE: &str = "RELAY_ALLOW_PRIVATE_UPSTREAMS";

/// What the operator allows beyond the public internet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamPolicy {
    /// Normalised host keys: lowercase names without trailing dots, canonical IP strings.
    allow_hosts: BTreeSet<String>,
    allow_private: bool,
}

impl UpstreamPolicy {
    /// Entries are normalised like URL hosts (`LocalHost.` -> `localhost`, `[::1]` -> `::1`,
    /// `0x7f000001` -> `127.0.0.1`). An entry that is not a host name matches nothing;
    /// [`UpstreamPolicy::from_env`] rejects such entries instead.
    pub fn new(allow_hosts: Vec<String>, allow_private: bool) -> Self {
        let allow_hosts = allow_hosts
            .iter()
            .map(|h| h.trim())
            .filter(|h| !h.is_empty())
            .map(|h| normalize_allow_entry(h).unwrap_or_else(|| h.to_ascii_lowercase()))
            .collect();
        Self { allow_hosts, allow_private }
    }

    /// Reads [`ENV_ALLOW_HOSTS`] and [`ENV_ALLOW_PRIVATE`]; both unset means public https only.
    pub fn from_env() -> anyhow::Result<Self> {
        let hosts = read_env(ENV_ALLOW_HOSTS)?;
        let private = read_env(ENV_ALLOW_PRIVATE)?;
        Self::from_values(hosts.as_deref(), private.as_deref())
    }

    fn from_values(hosts: Option<&str>, private: Option<&str>) -> anyhow::Result<Self> {
        let mut allow_hosts = Vec::new();
        for entry in hosts.unwrap_or("").split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let normalized = normalize_allow_entry(entry).with_context(|| {
                format!("{ENV_ALLOW_HOSTS}: {entry:?} is not a host name or IP address (no scheme, port or path)")
            })?;
            allow_hosts.push(normalized);
        }
        let allow_private = match private.map(|p| p.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("false") | Some("0") | Some("no") | Some("off") => false,
            Some("true") | Some("1") | Some("yes") | Some("on") => true,
            Some(other) => anyhow::bail!("{ENV_ALLOW_PRIVATE}: expected true or false, got {other:?}"),
        };
        Ok(Self::new(allow_hosts, allow_private))
    }

    /// The normalised allow-list.
    pub fn allow_hosts(&self) -> impl Iterator<Item = &str> {
        self.allow_hosts.iter().map(String::as_str)
    }

    pub fn allow_private(&self) -> bool {
        self.allow_private
    }

    /// Whether `host` (any spelling a URL host or DNS name may take) is on the allow-list.
    pub fn is_allow_listed(&self, host: &str) -> bool {
        !self.allow_hosts.is_empty() && self.allow_hosts.contains(&host_key(host))
    }

    /// `Err(why)` when the policy refuses to connect to `ip`.
    fn check_ip(&self, ip: IpAddr) -> Result<(), &'static str> {
        match classify_ip(ip) {
            Some(v) if !(self.allow_private && v.scope == Scope::Private) => Err(v.why),
            _ => Ok(()),
        }
    }

    /// `Err(why)` when the policy refuses a DNS name before resolving it.
    fn check_name(&self, name: &str) -> Result<(), &'static str> {
        match classify_name(name) {
            Some(v) if !(self.allow_private && v.scope == Scope::Private) => Err(v.why),
            _ => Ok(()),
        }
    }
}

fn read_env(name: &str) -> anyhow::Result<Option<String>> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("{name} is not valid UTF-8")),
    }
}

/// Why an upstream URL or address was refused. `Display` is safe to show the client; the resolved
/// address of a name (`ResolvedToForbidden::addr`) is kept out of it and only logged.
#[derive(Debug, thiserror::Error)]
pub enum SsrfError {
    #[error("the upstream base URL is not a valid absolute URL: {reason}")]
    BadUrl { reason: String },
    #[error("the upstream base URL must use https (got {scheme:?})")]
    NotHttps { scheme: String },
    #[error("the upstream base URL must not contain credentials (user:password@)")]
    Userinfo,
    #[error("the upstream base URL has no host")]
    EmptyHost,
    #[error("the upstream base URL must not contain a query string")]
    QueryNotAllowed,
    #[error("the upstream base URL must not contain a fragment")]
    FragmentNotAllowed,
    #[error("the upstream host {host:?} is not allowed: {why}")]
    ForbiddenHost { host: String, why: &'static str },
    #[error("the upstream address {addr} is not allowed: {why}")]
    ForbiddenAddress { addr: IpAddr, why: &'static str },
    #[error("the upstream host {host:?} resolves to an address that is not allowed: {why}")]
    ResolvedToForbidden { host: String, addr: IpAddr, why: &'static str },
    #[error("the upstream host {host:?} resolved to no addresses")]
    NoAddresses { host: String },
    #[error("the upstream host {host:?} could not be resolved")]
    Lookup {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the request path leaves the upstream base URL")]
    PathEscapesBase,
}

impl SsrfError {
    /// A stable machine-readable code for the API error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadUrl { .. }
            | Self::EmptyHost
            | Self::Userinfo
            | Self::QueryNotAllowed
            | Self::FragmentNotAllowed
            | Self::PathEscapesBase => "invalid_upstream_url",
            Self::NotHttps { .. } => "upstream_not_https",
            Self::ForbiddenHost { .. } | Self::ForbiddenAddress { .. } | Self::ResolvedToForbidden { .. } => {
                "upstream_not_allowed"
            }
            Self::NoAddresses { .. } | Self::Lookup { .. } => "upstream_unresolvable",
        }
    }

    /// The policy error somewhere in `err`'s source chain (e.g. inside a `reqwest::Error` from a
    /// client built by [`client`]), so the route can answer "not allowed" rather than "unreachable".
    pub fn find<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a SsrfError> {
        let mut cur: Option<&'a (dyn StdError + 'static)> = Some(err);
        while let Some(e) = cur {
            if let Some(found) = e.downcast_ref::<SsrfError>() {
                return Some(found);
            }
            cur = e.source();
        }
        None
    }
}

/// A base URL that passed [`check_base_url`]: https (or http for an allow-listed host), a host, an
/// explicit or default port, a path prefix without a trailing slash, no userinfo, query or fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedUrl {
    url: Url,
    port: u16,
}

impl CheckedUrl {
    pub fn as_url(&self) -> &Url {
        &self.url
    }

    pub fn scheme(&self) -> &str {
        self.url.scheme()
    }

    /// The host as written in a URL: a lowercase (punycode) name, a dotted IPv4 address, or a
    /// bracketed IPv6 address.
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    /// The explicit port, or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `""` for the root, otherwise `/segment/...` without a trailing slash.
    pub fn path_prefix(&self) -> &str {
        let path = self.url.path();
        if path == "/" {
            ""
        } else {
            path
        }
    }

    /// The request URL for `rest` (a path below the base, leading slashes ignored) and an optional
    /// raw query. Dot segments (also `%2e%2e`) are resolved and must stay under the base path;
    /// scheme, host and port cannot change.
    pub fn join(&self, rest: &str, query: Option<&str>) -> Result<Url, SsrfError> {
        let prefix = self.path_prefix();
        let rest = rest.trim_start_matches(['/', '\\']);
        let mut url = self.url.clone();
        url.set_path(&format!("{prefix}/{rest}"));
        url.set_query(query);
        let path = url.path();
        let inside =
            prefix.is_empty() || path == prefix || path.strip_prefix(prefix).is_some_and(|r| r.starts_with('/'));
        let same_origin = url.scheme() == self.url.scheme()
            && url.host_str() == self.url.host_str()
            && url.port_or_known_default() == Some(self.port);
        if !inside || !same_origin || url.fragment().is_some() {
            return Err(SsrfError::PathEscapesBase);
        }
        Ok(url)
    }
}

impl fmt::Display for CheckedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

/// Checks an upstream base URL without DNS: syntax, scheme, userinfo, query, fragment, host name
/// and literal address. Run it when the URL is stored and again when it is used (the policy may
/// have changed), then build requests with [`CheckedUrl::join`] and the [`client`].
pub fn check_base_url(policy: &UpstreamPolicy, raw: &str) -> Result<CheckedUrl, SsrfError> {
    let mut url = Url::parse(raw.trim()).map_err(|e| SsrfError::BadUrl { reason: e.to_string() })?;
    let scheme = url.scheme().to_owned();
    if scheme != "https" && scheme != "http" {
        return Err(SsrfError::NotHttps { scheme });
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(SsrfError::Userinfo);
    }
    if url.query().is_some() {
        return Err(SsrfError::QueryNotAllowed);
    }
    if url.fragment().is_some() {
        return Err(SsrfError::FragmentNotAllowed);
    }
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or(SsrfError::EmptyHost)?.to_owned();
    let allow_listed = policy.is_allow_listed(&host);
    if !allow_listed {
        check_host(policy, &host)?;
    }
    if scheme == "http" && !allow_listed {
        return Err(SsrfError::NotHttps { scheme });
    }
    let port = url.port_or_known_default().ok_or_else(|| SsrfError::BadUrl { reason: "no port".into() })?;
    if port == 0 {
        return Err(SsrfError::BadUrl { reason: "port 0 is not a valid upstream port".into() });
    }
    let path = url.path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/').to_owned();
        url.set_path(&trimmed);
    }
    Ok(CheckedUrl { url, port })
}

/// The host of a parsed URL: bracketed IPv6, canonical dotted IPv4 (the URL parser already turned
/// every numeric spelling into it), or a lowercase name.
fn check_host(policy: &UpstreamPolicy, host: &str) -> Result<(), SsrfError> {
    if let Some(ip) = parse_ip_lenient(host) {
        return policy.check_ip(ip).map_err(|why| SsrfError::ForbiddenAddress { addr: ip, why });
    }
    let name = trim_name(host);
    if name.is_empty() {
        return Err(SsrfError::EmptyHost);
    }
    policy.check_name(&name).map_err(|why| SsrfError::ForbiddenHost { host: host.to_owned(), why })
}

/// Whether the policy scope lets `allow_private` override a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// A private network: admitted with `allow_private`.
    Private,
    /// Loopback, link-local, metadata, reserved...: only an exact allow-list entry admits it.
    Never,
}

#[derive(Clone, Copy, Debug)]
struct Verdict {
    why: &'static str,
    scope: Scope,
}

const fn never(why: &'static str) -> Option<Verdict> {
    Some(Verdict { why, scope: Scope::Never })
}

const fn private(why: &'static str) -> Option<Verdict> {
    Some(Verdict { why, scope: Scope::Private })
}

const METADATA: &str = "cloud metadata service address";

/// Why `ip` is not a globally routable unicast destination, or `None` when it is.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    classify_ip(ip).map(|v| v.why)
}

fn classify_ip(ip: IpAddr) -> Option<Verdict> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Verdict> {
    let [a, b, c, _] = ip.octets();
    // Metadata endpoints first: some sit in ranges allow_private would otherwise admit.
    const METADATA_V4: [Ipv4Addr; 6] = [
        Ipv4Addr::new(169, 254, 169, 254), // AWS, GCP, Azure, OCI, OpenStack, DigitalOcean...
        Ipv4Addr::new(169, 254, 170, 2),   // AWS ECS task credentials
        Ipv4Addr::new(169, 254, 170, 23),  // AWS EKS pod identity agent
        Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
        Ipv4Addr::new(168, 63, 129, 16),   // Azure WireServer (a public address only VMs reach)
        Ipv4Addr::new(192, 0, 0, 192),     // Oracle Cloud Classic
    ];
    if METADATA_V4.contains(&ip) {
        return never(METADATA);
    }
    match (a, b, c) {
        (255, 255, 255) if ip == Ipv4Addr::BROADCAST => never("broadcast address"),
        (0, 0, 0) if ip.is_unspecified() => never("unspecified address"),
        (0, ..) => never("\"this network\" address (0.0.0.0/8)"),
        (127, ..) => never("loopback address"),
        (10, ..) => private("private network address (10.0.0.0/8)"),
        (172, 16..=31, _) => private("private network address (172.16.0.0/12)"),
        (192, 168, _) => private("private network address (192.168.0.0/16)"),
        (100, 64..=127, _) => private("carrier-grade NAT shared address (100.64.0.0/10)"),
        (169, 254, _) => never("link-local address (169.254.0.0/16)"),
        (192, 0, 0) => never("IETF protocol assignment (192.0.0.0/24)"),
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => never("documentation address (TEST-NET)"),
        (192, 88, 99) => never("deprecated 6to4 relay anycast address (192.88.99.0/24)"),
        (198, 18..=19, _) => never("benchmarking address (198.18.0.0/15)"),
        (224..=239, ..) => never("multicast address"),
        (240..=255, ..) => never("reserved address (240.0.0.0/4)"),
        _ => None,
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<Verdict> {
    // Judged by the IPv4 address it carries: a dual-stack socket connects to exactly that.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    const METADATA_V6: [Ipv6Addr; 2] = [
        Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254), // AWS IMDS over IPv6 (inside ULA)
        Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23),  // AWS EKS pod identity agent
    ];
    if METADATA_V6.contains(&ip) {
        return never(METADATA);
    }
    let s = ip.segments();
    if ip.is_unspecified() {
        return never("unspecified address");
    }
    if ip.is_loopback() {
        return never("loopback address");
    }
    if s[..6] == [0; 6] {
        return never("deprecated IPv4-compatible IPv6 address (::/96)");
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64 well-known prefix: the gateway connects to the embedded IPv4 address.
        let [hi, lo] = [s[6], s[7]];
        let embedded = Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
        return classify_v4(embedded).and(never("NAT64 address of a non-global IPv4 address (64:ff9b::/96)"));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return never("local-use NAT64 address (64:ff9b:1::/48)");
    }
    if s[..4] == [0x100, 0, 0, 0] {
        return never("discard-only address (100::/64)");
    }
    if s[0] & 0xff00 == 0xff00 {
        return never("multicast address");
    }
    if s[0] & 0xffc0 == 0xfe80 {
        return never("link-local address (fe80::/10)");
    }
    if s[0] & 0xffc0 == 0xfec0 {
        return private("deprecated site-local address (fec0::/10)");
    }
    if s[0] & 0xfe00 == 0xfc00 {
        return private("unique local address (fc00::/7)");
    }
    if (s[0] == 0x2001 && s[1] == 0x0db8) || (s[0] == 0x3fff && s[1] & 0xf000 == 0) {
        return never("documentation address (2001:db8::/32, 3fff::/20)");
    }
    if s[0] == 0x2001 && s[1] == 0 {
        return never("Teredo tunnelling address (2001::/32)");
    }
    if s[0] == 0x2001 && s[1] < 0x200 {
        return never("IETF protocol assignment (2001::/23)");
    }
    if s[0] == 0x2002 {
        return never("6to4 tunnelling address (2002::/16)");
    }
    if s[0] & 0xe000 != 0x2000 {
        return never("reserved IPv6 address (outside global unicast 2000::/3)");
    }
    None
}

/// Names refused before any DNS query. Resolved addresses are checked anyway; this catches the
/// names whose answer depends on the relay's own host (hosts file, search domains, mDNS).
fn classify_name(name: &str) -> Option<Verdict> {
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    };
    if name.len() > 253 || !name.split('.').all(valid_label) {
        return never("not a valid DNS host name");
    }
    const LOOPBACK_NAMES: [&str; 4] = ["localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"];
    if LOOPBACK_NAMES.contains(&name) || name.ends_with(".localhost") {
        return never("local host name");
    }
    const METADATA_NAMES: [&str; 6] = [
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
    ];
    if METADATA_NAMES.contains(&name) {
        return never("cloud metadata service name");
    }
    const PRIVATE_SUFFIXES: [&str; 4] = [".internal", ".local", ".localdomain", ".home.arpa"];
    if PRIVATE_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        return private("private-use domain name");
    }
    if !name.contains('.') {
        return private("single-label host name (resolved through local search domains)");
    }
    None
}

/// Lowercase, without brackets or trailing dots.
fn trim_name(host: &str) -> String {
    let h = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// The allow-list key of a host: the canonical address for any IP spelling, else the trimmed name.
fn host_key(host: &str) -> String {
    match parse_ip_lenient(host) {
        Some(ip) => ip.to_string(),
        None => trim_name(host),
    }
}

/// An allow-list entry normalised like a URL host, or `None` if it is not a bare host.
fn normalize_allow_entry(entry: &str) -> Option<String> {
    if let Some(ip) = parse_ip_lenient(entry) {
        return Some(ip.to_string());
    }
    let url = Url::parse(&format!("http://{entry}/")).ok()?;
    let bare = url.username().is_empty()
        && url.password().is_none()
        && url.port().is_none()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none();
    let key = host_key(url.host_str()?);
    (bare && !key.is_empty()).then_some(key)
}

/// Parses an IP literal the way inet_aton / the WHATWG URL parser do: IPv4 in one to four parts,
/// each decimal, octal (leading 0) or hex (0x), the last part filling the remaining bytes
/// (`127.1`, `2130706433`, `0x7f.0.0.1`, `017700000001`), one trailing dot allowed; IPv6 with or
/// without brackets, zone id ignored.
fn parse_ip_lenient(host: &str) -> Option<IpAddr> {
    let h = host.trim();
    if let Some(inner) = h.strip_prefix('[').and_then(|h| h.strip_suffix(']')).or(h.contains(':').then_some(h)) {
        let addr = inner.split('%').next().unwrap_or(inner);
        return addr.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    parse_ipv4_lenient(h).map(IpAddr::V4)
}

fn parse_ipv4_lenient(host: &str) -> Option<Ipv4Addr> {
    let h = host.strip_suffix('.').unwrap_or(host);
    if h.is_empty() {
        return None;
    }
    let parts: Vec<&str> = h.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let nums = parts.iter().map(|p| parse_ipv4_part(p)).collect::<Option<Vec<u64>>>()?;
    let (last, head) = nums.split_last()?;
    if head.iter().any(|&n| n > 255) {
        return None;
    }
    let last_bits = 8 * (5 - nums.len() as u32);
    if *last >= 1u64 << last_bits {
        return None;
    }
    let mut value = *last;
    for (i, n) in head.iter().enumerate() {
        value |= n << (24 - 8 * i as u32);
    }
    u32::try_from(value).ok().map(Ipv4Addr::from)
}

fn parse_ipv4_part(part: &str) -> Option<u64> {
    let (digits, radix) = if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
        (hex, 16)
    } else if part.len() > 1 && part.starts_with('0') {
        (&part[1..], 8)
    } else {
        (part, 10)
    };
    if part.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return Some(0);
    }
    if significant.len() > 12 {
        return None;
    }
    u64::from_str_radix(significant, radix).ok()
}

/// DNS resolution, behind a trait so tests can answer without a network.
#[async_trait::async_trait]
pub trait Lookup: Send + Sync + 'static {
    async fn lookup(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>>;
}

/// The operating system's resolver (getaddrinfo on a blocking thread).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemLookup;

#[async_trait::async_trait]
impl Lookup for SystemLookup {
    async fn lookup(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }
}

/// A reqwest resolver that refuses a host if ANY of its addresses is forbidden (an attacker
/// controls the order and the retry) and otherwise returns exactly the addresses it checked.
#[derive(Clone)]
pub struct PolicyResolver {
    policy: Arc<UpstreamPolicy>,
    lookup: Arc<dyn Lookup>,
}

impl fmt::Debug for PolicyResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyResolver").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl PolicyResolver {
    pub fn new(policy: Arc<UpstreamPolicy>, lookup: Arc<dyn Lookup>) -> Self {
        Self { policy, lookup }
    }

    /// Resolves `host` and checks the name and every address against the policy.
    pub async fn resolve_host(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, SsrfError> {
        let allow_listed = self.policy.is_allow_listed(host);
        // A numeric name would be read as an address by getaddrinfo: treat it as the literal it is.
        if let Some(ip) = parse_ip_lenient(host) {
            if !allow_listed {
                self.policy.check_ip(ip).map_err(|why| refused_literal(host, ip, why))?;
            }
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let name = trim_name(host);
        if name.is_empty() {
            return Err(SsrfError::EmptyHost);
        }
        if !allow_listed {
            self.policy.check_name(&name).map_err(|why| {
                tracing::warn!(host, why, "refused upstream host name");
                SsrfError::ForbiddenHost { host: host.to_owned(), why }
            })?;
        }
        // Resolve the name as given: a trailing dot keeps it out of the search domains.
        let addrs = self
            .lookup
            .lookup(host, port)
            .await
            .map_err(|source| SsrfError::Lookup { host: host.to_owned(), source })?;
        if addrs.is_empty() {
            return Err(SsrfError::NoAddresses { host: host.to_owned() });
        }
        if !allow_listed {
            for addr in &addrs {
                let ip = addr.ip();
                self.policy.check_ip(ip).map_err(|why| {
                    tracing::warn!(host, %ip, why, "upstream host resolved to a forbidden address");
                    SsrfError::ResolvedToForbidden { host: host.to_owned(), addr: ip, why }
                })?;
            }
        }
        Ok(addrs)
    }
}

fn refused_literal(host: &str, addr: IpAddr, why: &'static str) -> SsrfError {
    tracing::warn!(host, %addr, why, "refused upstream address");
    SsrfError::ForbiddenAddress { addr, why }
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: hyper puts the URL's port on every address it is given.
            let addrs = this.resolve_host(&host, 0).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The client for caller-chosen upstreams: every name goes through [`PolicyResolver`], redirects
/// are returned to the caller unfollowed, no proxy (environment proxies would bypass the resolver),
/// https only unless the allow-list may need plain http. IP-literal URLs skip DNS, so only send
/// URLs built from a [`CheckedUrl`].
pub fn client(
    policy: Arc<UpstreamPolicy>,
    lookup: Arc<dyn Lookup>,
    connect_timeout: Duration,
) -> reqwest::Result<reqwest::Client> {
    let https_only = policy.allow_hosts.is_empty();
    reqwest::Client::builder()
        .dns_resolver(Arc::new(PolicyResolver::new(policy, lookup)))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .https_only(https_only)
        .connect_timeout(connect_timeout)
        .build()
}

#[cfg(test)]
mod tests;
