//! The SSRF policy's tests: address ranges and their spellings, URL checks, and the guarded
//! client against real local servers and a fake resolver.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn public() -> UpstreamPolicy {
    UpstreamPolicy::default()
}

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse().expect("test IPv4"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test IP")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Ok,
    BadUrl,
    NotHttps,
    Userinfo,
    Query,
    Fragment,
    Host,
    Addr,
}

fn kind(r: &Result<CheckedUrl, SsrfError>) -> Want {
    match r {
        Ok(_) => Want::Ok,
        Err(SsrfError::BadUrl { .. } | SsrfError::EmptyHost) => Want::BadUrl,
        Err(SsrfError::NotHttps { .. }) => Want::NotHttps,
        Err(SsrfError::Userinfo) => Want::Userinfo,
        Err(SsrfError::QueryNotAllowed) => Want::Query,
        Err(SsrfError::FragmentNotAllowed) => Want::Fragment,
        Err(SsrfError::ForbiddenHost { .. }) => Want::Host,
        Err(SsrfError::ForbiddenAddress { .. }) => Want::Addr,
        Err(other) => panic!("unexpected error from check_base_url: {other:?}"),
    }
}

fn assert_table(policy: &UpstreamPolicy, cases: &[(&str, Want)]) {
    let mut failures = Vec::new();
    for (raw, want) in cases {
        let got = check_base_url(policy, raw);
        if kind(&got) != *want {
            failures.push(format!("{raw:?}: want {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "check_base_url mismatches:\n{}", failures.join("\n"));
}

#[test]
fn refuses_every_loopback_spelling() {
    use Want::*;
    assert_table(
        &public(),
        &[
            ("https://127.0.0.1", Addr),
            ("https://127.0.0.1:8443/v1", Addr),
            ("https://127.255.255.254", Addr),
            ("https://127.1", Addr),
            ("https://127.0.1", Addr),
            ("https://2130706433", Addr),
            ("https://0x7f000001", Addr),
            ("https://0X7F000001", Addr),
            ("https://0x7f.0.0.1", Addr),
            ("https://0x7f.1", Addr),
            ("https://0177.0.0.1", Addr),
            ("https://0177.0.0.01", Addr),
            ("https://017700000001", Addr),
            ("https://0000000177.0.0.1", Addr),
            ("https://127.0.0.1.", Addr),
            ("https://%31%32%37.0.0.1", Addr),
            ("https://%31%32%37%2e%30%2e%30%2e%31", Addr),
            ("https://\u{ff11}\u{ff12}\u{ff17}.\u{ff10}.\u{ff10}.\u{ff11}", Addr), // fullwidth digits
            ("https://127\u{3002}0\u{3002}0\u{3002}1", Addr),                      // ideographic full stop
            ("HTTPS://127.0.0.1", Addr),
            ("https://[::1]", Addr),
            ("https://[0:0:0:0:0:0:0:1]", Addr),
            ("https://[::ffff:127.0.0.1]", Addr),
            ("https://[::ffff:7f00:1]", Addr),
            ("https://[::127.0.0.1]", Addr),
            ("https://[64:ff9b::7f00:1]", Addr),
            ("https://0.0.0.0", Addr),
            ("https://0", Addr),
            ("https://[::]", Addr),
            ("https://localhost", Host),
            ("https://LOCALHOST:8080", Host),
            ("https://localhost.", Host),
            ("https://api.localhost", Host),
            ("https://%6c%6f%63%61%6c%68%6f%73%74", Host),
            ("https://\u{ff4c}\u{ff4f}\u{ff43}\u{ff41}\u{ff4c}\u{ff48}\u{ff4f}\u{ff53}\u{ff54}", Host),
            ("https://ip6-localhost", Host),
            ("https://localhost.localdomain", Host),
        ],
    );
}

#[test]
fn refuses_metadata_private_and_special_ranges() {
    use Want::*;
    assert_table(
        &public(),
        &[
            ("https://169.254.169.254", Addr),
            ("https://169.254.169.254/latest/meta-data", Addr),
            ("https://2852039166", Addr),
            ("https://0xa9fea9fe", Addr),
            ("https://0251.0376.0251.0376", Addr),
            ("https://169.254.170.2", Addr),
            ("https://100.100.100.200", Addr),
            ("https://168.63.129.16", Addr),
            ("https://[fd00:ec2::254]", Addr),
            ("https://[::ffff:169.254.169.254]", Addr),
            ("https://[::ffff:a9fe:a9fe]", Addr),
            ("https://[64:ff9b::a9fe:a9fe]", Addr),
            ("https://[64:ff9b::169.254.169.254]", Addr),
            ("https://metadata.google.internal", Host),
            ("https://metadata.google.internal.", Host),
            ("https://metadata", Host),
            ("https://instance-data", Host),
            ("https://10.0.0.1", Addr),
            ("https://10.255.255.255", Addr),
            ("https://0x0a000001", Addr),
            ("https://167772161", Addr),
            ("https://172.16.0.1", Addr),
            ("https://172.31.255.255", Addr),
            ("https://192.168.0.1", Addr),
            ("https://192.168.1.10:8080/v1", Addr),
            ("https://100.64.0.1", Addr),
            ("https://100.127.255.255", Addr),
            ("https://0.1.2.3", Addr),
            ("https://169.254.1.1", Addr),
            ("https://192.0.0.1", Addr),
            ("https://192.0.2.1", Addr),
            ("https://198.51.100.7", Addr),
            ("https://203.0.113.9", Addr),
            ("https://198.18.0.1", Addr),
            ("https://198.19.255.255", Addr),
            ("https://192.88.99.1", Addr),
            ("https://224.0.0.1", Addr),
            ("https://239.255.255.250", Addr),
            ("https://240.0.0.1", Addr),
            ("https://255.255.255.255", Addr),
            ("https://[::ffff:10.0.0.1]", Addr),
            ("https://[::ffff:0:a00:1]", Addr),
            ("https://[fc00::1]", Addr),
            ("https://[fd12:3456:789a::1]", Addr),
            ("https://[fec0::1]", Addr),
            ("https://[fe80::1]", Addr),
            ("https://[ff02::1]", Addr),
            ("https://[2001:db8::1]", Addr),
            ("https://[3fff::1]", Addr),
            ("https://[2001::1]", Addr),
            ("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]", Addr),
            ("https://[2002:7f00:1::1]", Addr),
            ("https://[2002:808:808::1]", Addr),
            ("https://[100::1]", Addr),
            ("https://[64:ff9b:1::a00:1]", Addr),
            ("https://[64:ff9b::a00:1]", Addr),
            ("https://[::8.8.8.8]", Addr),
            ("https://[4000::1]", Addr),
            ("https://intranet", Host),
            ("https://ollama.internal", Host),
            ("https://printer.local", Host),
            ("https://router.home.arpa", Host),
        ],
    );
}

#[test]
fn refuses_bad_syntax_schemes_userinfo_query_and_fragment() {
    use Want::*;
    assert_table(
        &public(),
        &[
            ("http://api.example.com", NotHttps),
            ("http://api.example.com:443/v1", NotHttps),
            ("ftp://api.example.com", NotHttps),
            ("file:///etc/passwd", NotHttps),
            ("gopher://api.example.com", NotHttps),
            ("https://user:pw@api.example.com", Userinfo),
            ("https://user@api.example.com", Userinfo),
            ("https://:pw@api.example.com", Userinfo),
            ("https://api.example.com@127.0.0.1", Userinfo),
            ("https://api.example.com/v1?key=1", Query),
            ("https://api.example.com/v1?", Query),
            ("https://api.example.com/v1#frag", Fragment),
            ("https://api.example.com/#", Fragment),
            ("", BadUrl),
            ("not a url", BadUrl),
            ("api.example.com", BadUrl),
            ("//api.example.com", BadUrl),
            ("https://", BadUrl),
            ("https://:443", BadUrl),
            ("https://api.example.com:0", BadUrl),
            ("https://api.example.com:99999", BadUrl),
            ("https://[::1%25eth0]", BadUrl),
            ("https://256.0.0.1", BadUrl),
            ("https://exa mple.com", BadUrl),
            ("https://a..b.example.com", Host),
            ("https://a!b.example.com", Host),
        ],
    );
}

#[test]
fn accepts_and_normalises_public_urls() {
    let cases = [
        ("https://api.openai.com/v1", "https://api.openai.com/v1", "api.openai.com", 443, "/v1"),
        ("HTTPS://API.Example.COM/v1/", "https://api.example.com/v1", "api.example.com", 443, "/v1"),
        ("https://api.example.com:443/", "https://api.example.com/", "api.example.com", 443, ""),
        ("https://api.example.com", "https://api.example.com/", "api.example.com", 443, ""),
        (
            "https://api.example.com:8443/openai/v1",
            "https://api.example.com:8443/openai/v1",
            "api.example.com",
            8443,
            "/openai/v1",
        ),
        ("  https://api.example.com/v1  ", "https://api.example.com/v1", "api.example.com", 443, "/v1"),
        ("https://api.example.com/a/../v1", "https://api.example.com/v1", "api.example.com", 443, "/v1"),
        ("https://b\u{fc}cher.example/v1", "https://xn--bcher-kva.example/v1", "xn--bcher-kva.example", 443, "/v1"),
        ("https://1.1.1.1", "https://1.1.1.1/", "1.1.1.1", 443, ""),
        ("https://16843009/v1", "https://1.1.1.1/v1", "1.1.1.1", 443, "/v1"),
        (
            "https://[2606:4700:4700::1111]/v1",
            "https://[2606:4700:4700::1111]/v1",
            "[2606:4700:4700::1111]",
            443,
            "/v1",
        ),
        ("https://[::ffff:1.1.1.1]", "https://[::ffff:101:101]/", "[::ffff:101:101]", 443, ""),
        ("https://[64:ff9b::808:808]", "https://[64:ff9b::808:808]/", "[64:ff9b::808:808]", 443, ""),
        ("https://my_host.example.com", "https://my_host.example.com/", "my_host.example.com", 443, ""),
        ("https://internal.example.com", "https://internal.example.com/", "internal.example.com", 443, ""),
        ("https://172.32.0.1", "https://172.32.0.1/", "172.32.0.1", 443, ""),
        ("https://100.128.0.1", "https://100.128.0.1/", "100.128.0.1", 443, ""),
    ];
    for (raw, display, host, port, prefix) in cases {
        let checked = check_base_url(&public(), raw).unwrap_or_else(|e| panic!("{raw:?} refused: {e}"));
        assert_eq!(checked.to_string(), display, "{raw:?}");
        assert_eq!(checked.host(), host, "{raw:?}");
        assert_eq!(checked.port(), port, "{raw:?}");
        assert_eq!(checked.path_prefix(), prefix, "{raw:?}");
        assert_eq!(checked.scheme(), "https", "{raw:?}");
    }
}

#[test]
fn allow_list_admits_exact_hosts_only_and_http_only_for_them() {
    use Want::*;
    let policy = UpstreamPolicy::new(
        vec!["LocalHost.".into(), "0x7f000001".into(), "[::1]".into(), "ollama.internal".into()],
        false,
    );
    assert_eq!(policy.allow_hosts().collect::<Vec<_>>(), ["127.0.0.1", "::1", "localhost", "ollama.internal"]);
    assert_table(
        &policy,
        &[
            ("http://localhost:11434/v1", Ok),
            ("http://LOCALHOST.:11434", Ok),
            ("http://127.0.0.1:11434", Ok),
            ("http://2130706433:11434", Ok),
            ("http://[::1]:11434", Ok),
            ("https://ollama.internal", Ok),
            ("http://127.0.0.2", Addr),
            ("http://foo.localhost", Host),
            ("http://api.example.com", NotHttps),
            ("http://user:pw@localhost", Userinfo),
            ("http://localhost/?x", Query),
        ],
    );
}

#[test]
fn allow_private_admits_private_networks_but_never_loopback_or_metadata() {
    use Want::*;
    let policy = UpstreamPolicy::new(Vec::new(), true);
    assert_table(
        &policy,
        &[
            ("https://192.168.1.10", Ok),
            ("https://10.1.2.3:8443/v1", Ok),
            ("https://172.20.0.5", Ok),
            ("https://100.64.1.1", Ok),
            ("https://[fd12::1]", Ok),
            ("https://[::ffff:192.168.1.10]", Ok),
            ("https://intranet", Ok),
            ("https://ollama.internal", Ok),
            ("http://192.168.1.10", NotHttps),
            ("https://169.254.169.254", Addr),
            ("https://100.100.100.200", Addr),
            ("https://[fd00:ec2::254]", Addr),
            ("https://[fe80::1]", Addr),
            ("https://127.0.0.1", Addr),
            ("https://[::1]", Addr),
            ("https://[64:ff9b::c0a8:10a]", Addr),
            ("https://localhost", Host),
            ("https://metadata.google.internal", Host),
            ("https://metadata", Host),
        ],
    );
    // The metadata address itself stays reachable only through an explicit allow-list entry.
    let explicit = UpstreamPolicy::new(vec!["169.254.169.254".into()], true);
    assert!(check_base_url(&explicit, "http://169.254.169.254/latest").is_ok());
}

#[test]
fn forbidden_reason_table() {
    let forbidden = [
        "0.0.0.0",
        "0.255.255.255",
        "10.0.0.0",
        "100.64.0.0",
        "100.127.255.255",
        "100.100.100.200",
        "127.0.0.1",
        "127.255.255.255",
        "168.63.129.16",
        "169.254.0.1",
        "169.254.169.254",
        "172.16.0.0",
        "172.31.255.255",
        "192.0.0.8",
        "192.0.2.255",
        "192.88.99.1",
        "192.168.255.255",
        "198.18.0.0",
        "198.19.255.255",
        "198.51.100.0",
        "203.0.113.255",
        "224.0.0.0",
        "239.255.255.255",
        "240.0.0.0",
        "255.255.255.255",
        "::",
        "::1",
        "::2",
        "::127.0.0.1",
        "::ffff:127.0.0.1",
        "::ffff:10.1.1.1",
        "::ffff:169.254.169.254",
        "::ffff:0:7f00:1",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::1",
        "100::",
        "100::ffff:ffff:ffff:ffff",
        "2001::",
        "2001:0:ffff::1",
        "2001:10::1",
        "2001:1ff::1",
        "2001:db8::",
        "2001:db8:ffff::1",
        "2002::1",
        "2002:c000:204::1",
        "3fff:fff::1",
        "5f00::1",
        "fc00::",
        "fdff:ffff::1",
        "fd00:ec2::254",
        "fe80::1",
        "febf::1",
        "fec0::1",
        "ff00::",
        "ff02::1",
    ];
    for s in forbidden {
        assert!(forbidden_reason(ip(s)).is_some(), "{s} should be forbidden");
    }
    let global = [
        "1.1.1.1",
        "8.8.8.8",
        "9.255.255.255",
        "11.0.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "126.255.255.255",
        "128.0.0.0",
        "169.253.255.255",
        "169.255.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.0.1.1",
        "192.167.255.255",
        "192.169.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",
        "::ffff:1.1.1.1",
        "64:ff9b::808:808",
        "2001:200::1",
        "2001:4860:4860::8888",
        "2606:4700:4700::1111",
        "2a00:1450:4001::1",
        "3ffe::1",
    ];
    for s in global {
        assert_eq!(forbidden_reason(ip(s)), None, "{s} should be global");
    }
    assert_eq!(forbidden_reason(v4("127.0.0.1")), Some("loopback address"));
    assert_eq!(forbidden_reason(ip("::ffff:127.0.0.1")), Some("loopback address"));
    assert_eq!(forbidden_reason(v4("169.254.169.254")), Some(METADATA));
}

#[test]
fn lenient_ipv4_parser_matches_inet_aton_forms() {
    let loopback = Some(Ipv4Addr::LOCALHOST);
    for s in [
        "127.0.0.1",
        "127.1",
        "127.0.1",
        "2130706433",
        "0x7f000001",
        "0x7f.0.0.1",
        "0177.0.0.1",
        "017700000001",
        "127.0.0.1.",
        "0x7F.0x0.0.0x1",
    ] {
        assert_eq!(parse_ipv4_lenient(s), loopback, "{s}");
    }
    for s in ["", ".", "1.2.3.4.5", "256.0.0.1", "1.2.65536", "0x1g", "08.0.0.1", "1..2", "example.com", "4294967296"] {
        assert_eq!(parse_ipv4_lenient(s), None, "{s}");
    }
    assert_eq!(parse_ipv4_lenient("4294967295"), Some(Ipv4Addr::BROADCAST));
    assert_eq!(parse_ip_lenient("[::1]"), Some(ip("::1")));
    assert_eq!(parse_ip_lenient("fe80::1%eth0"), Some(ip("fe80::1")));
}

#[test]
fn from_values_parses_and_validates_the_environment() {
    let p = UpstreamPolicy::from_values(Some(" Localhost , 127.0.0.1,,[::1] "), Some("TRUE")).expect("valid");
    assert!(p.allow_private());
    assert!(p.is_allow_listed("localhost."));
    assert!(p.is_allow_listed("0x7f.1"));
    assert!(p.is_allow_listed("[::1]"));
    assert!(!p.is_allow_listed("127.0.0.2"));
    let empty = UpstreamPolicy::from_values(None, None).expect("valid");
    assert_eq!(empty, UpstreamPolicy::default());
    assert!(UpstreamPolicy::from_values(Some("http://localhost"), None).is_err());
    assert!(UpstreamPolicy::from_values(Some("localhost:8080"), None).is_err());
    assert!(UpstreamPolicy::from_values(Some("example.com/v1"), None).is_err());
    assert!(UpstreamPolicy::from_values(None, Some("maybe")).is_err());
}

#[test]
fn join_stays_under_the_base() {
    let base = check_base_url(&public(), "https://api.example.com/v1").expect("valid");
    let cases = [
        ("chat/completions", None, "https://api.example.com/v1/chat/completions"),
        ("/models", Some("limit=5"), "https://api.example.com/v1/models?limit=5"),
        ("//evil.example/x", None, "https://api.example.com/v1/evil.example/x"),
        ("\\\\evil.example/x", None, "https://api.example.com/v1/evil.example/x"),
        ("a/../b", None, "https://api.example.com/v1/b"),
        ("a#frag?", None, "https://api.example.com/v1/a%23frag%3F"),
        ("", None, "https://api.example.com/v1/"),
    ];
    for (rest, query, want) in cases {
        assert_eq!(base.join(rest, query).expect(rest).as_str(), want, "{rest:?}");
    }
    for rest in ["../admin", "%2e%2e/admin", "x/../../admin", ".."] {
        assert!(matches!(base.join(rest, None), Err(SsrfError::PathEscapesBase)), "{rest:?}");
    }
    let root = check_base_url(&public(), "https://api.example.com").expect("valid");
    assert_eq!(root.join("../v1/models", None).expect("root").as_str(), "https://api.example.com/v1/models");
}

/// Answers from a table and records every name it was asked for.
#[derive(Default)]
struct FakeLookup {
    table: HashMap<String, Vec<IpAddr>>,
    asked: Mutex<Vec<String>>,
}

impl FakeLookup {
    fn new(entries: &[(&str, &[&str])]) -> Self {
        let table = entries.iter().map(|(h, a)| ((*h).to_owned(), a.iter().map(|s| ip(s)).collect())).collect();
        Self { table, asked: Mutex::new(Vec::new()) }
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().expect("lock").clone()
    }
}

#[async_trait::async_trait]
impl Lookup for FakeLookup {
    async fn lookup(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        self.asked.lock().expect("lock").push(host.to_owned());
        match self.table.get(host) {
            Some(addrs) => Ok(addrs.iter().map(|ip| SocketAddr::new(*ip, port)).collect()),
            None => Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no such host")),
        }
    }
}

fn resolver(policy: UpstreamPolicy, lookup: &Arc<FakeLookup>) -> PolicyResolver {
    PolicyResolver::new(Arc::new(policy), lookup.clone())
}

fn fake() -> Arc<FakeLookup> {
    Arc::new(FakeLookup::new(&[
        ("api.example.com", &["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]),
        ("rebind.example", &["10.0.0.7"]),
        ("mixed.example", &["93.184.216.34", "192.168.0.1"]),
        ("mapped.example", &["::ffff:127.0.0.1"]),
        ("nat64.example", &["64:ff9b::a9fe:a9fe"]),
        ("lan.example", &["192.168.1.10"]),
        ("imds.example", &["169.254.169.254"]),
        ("ollama.test", &["127.0.0.1"]),
        ("empty.example", &[]),
    ]))
}

#[tokio::test]
async fn resolver_checks_every_address() {
    let lookup = fake();
    let r = resolver(public(), &lookup);
    let ok = r.resolve_host("api.example.com", 443).await.expect("public");
    assert_eq!(ok.len(), 2);
    assert!(ok.iter().all(|a| a.port() == 443));

    for host in ["rebind.example", "mixed.example", "mapped.example", "nat64.example", "imds.example"] {
        let err = r.resolve_host(host, 443).await.expect_err(host);
        assert!(matches!(err, SsrfError::ResolvedToForbidden { .. }), "{host}: {err:?}");
        assert!(!err.to_string().contains("10.0.0.7"), "the client message hides resolved addresses");
    }
    assert!(matches!(r.resolve_host("empty.example", 443).await, Err(SsrfError::NoAddresses { .. })));
    assert!(matches!(r.resolve_host("nowhere.example", 443).await, Err(SsrfError::Lookup { .. })));
}

#[tokio::test]
async fn resolver_refuses_names_and_numeric_names_before_dns() {
    let lookup = fake();
    let r = resolver(public(), &lookup);
    for host in ["localhost", "LOCALHOST.", "foo.localhost", "metadata.google.internal", "metadata", "intranet"] {
        let err = r.resolve_host(host, 443).await.expect_err(host);
        assert!(matches!(err, SsrfError::ForbiddenHost { .. }), "{host}: {err:?}");
    }
    for host in ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "[::1]", "::ffff:a9fe:a9fe", "0xa9fea9fe"] {
        let err = r.resolve_host(host, 443).await.expect_err(host);
        assert!(matches!(err, SsrfError::ForbiddenAddress { .. }), "{host}: {err:?}");
    }
    assert_eq!(r.resolve_host("16843009", 443).await.expect("public literal"), [SocketAddr::new(v4("1.1.1.1"), 443)]);
    assert!(lookup.asked().is_empty(), "nothing above may reach DNS: {:?}", lookup.asked());
}

#[tokio::test]
async fn allow_listed_host_may_resolve_to_loopback() {
    let lookup = fake();
    let r = resolver(UpstreamPolicy::new(vec!["ollama.test".into()], false), &lookup);
    let addrs = r.resolve_host("ollama.test", 11434).await.expect("allow-listed");
    assert_eq!(addrs, [SocketAddr::new(v4("127.0.0.1"), 11434)]);
    // The allow-list is exact: other names resolving to loopback stay refused.
    assert!(r.resolve_host("mapped.example", 443).await.is_err());
}

#[tokio::test]
async fn allow_private_admits_lan_but_not_metadata() {
    let lookup = fake();
    let r = resolver(UpstreamPolicy::new(Vec::new(), true), &lookup);
    assert_eq!(r.resolve_host("lan.example", 443).await.expect("lan"), [SocketAddr::new(v4("192.168.1.10"), 443)]);
    assert!(r.resolve_host("mixed.example", 443).await.is_ok());
    for host in ["imds.example", "nat64.example", "mapped.example", "ollama.test"] {
        let err = r.resolve_host(host, 443).await.expect_err(host);
        assert!(matches!(err, SsrfError::ResolvedToForbidden { .. }), "{host}: {err:?}");
    }
}

/// A one-line HTTP server on 127.0.0.1 that answers every request with `response` and records
/// each request line.
async fn tiny_server(response: &'static str) -> (u16, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let head = String::from_utf8_lossy(&buf);
            log.lock().expect("lock").push(head.lines().next().unwrap_or_default().to_owned());
            let _ = sock.write_all(response.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
    });
    (port, seen, task)
}

#[tokio::test]
async fn client_refuses_a_name_resolving_to_loopback_before_any_socket() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let lookup = Arc::new(FakeLookup::new(&[("evil.example", &["127.0.0.1"])]));
    let http = client(Arc::new(public()), lookup.clone(), Duration::from_secs(5)).expect("client");

    let err = http.get(format!("https://evil.example:{port}/")).send().await.expect_err("must be refused");
    let ssrf = SsrfError::find(&err).unwrap_or_else(|| panic!("no SsrfError in the chain: {err:?}"));
    assert!(matches!(ssrf, SsrfError::ResolvedToForbidden { addr, .. } if *addr == v4("127.0.0.1")), "{ssrf:?}");
    assert_eq!(ssrf.code(), "upstream_not_allowed");
    assert_eq!(lookup.asked(), ["evil.example"]);
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the listener must not have been reached: {other:?}"),
    }

    // Plain http is refused by the client itself when nothing is allow-listed.
    assert!(http.get(format!("http://api.example.com:{port}/")).send().await.is_err());
    assert!(matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock));
}

#[tokio::test]
async fn client_returns_redirects_unfollowed() {
    let (port, seen, server) =
        tiny_server("HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/meta-data/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
    let policy = Arc::new(UpstreamPolicy::new(vec!["127.0.0.1".into()], false));
    let lookup = Arc::new(FakeLookup::default());
    let base = check_base_url(&policy, &format!("http://127.0.0.1:{port}/v1")).expect("allow-listed");
    let http = client(policy, lookup.clone(), Duration::from_secs(5)).expect("client");

    let resp = http.get(base.join("models", None).expect("join")).send().await.expect("302 is a response");
    assert_eq!(resp.status(), reqwest::StatusCode::FOUND);
    assert_eq!(
        resp.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()),
        Some("http://169.254.169.254/latest/meta-data/")
    );
    assert_eq!(*seen.lock().expect("lock"), ["GET /v1/models HTTP/1.1"]);
    assert!(lookup.asked().is_empty());
    server.abort();
}

#[tokio::test]
async fn client_reaches_an_allow_listed_name_through_the_resolver() {
    let (port, seen, server) = tiny_server("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok").await;
    let policy = Arc::new(UpstreamPolicy::new(vec!["ollama.test".into()], false));
    let lookup = Arc::new(FakeLookup::new(&[("ollama.test", &["127.0.0.1"])]));
    let http = client(policy, lookup.clone(), Duration::from_secs(5)).expect("client");

    let resp = http.get(format!("http://ollama.test:{port}/api/tags")).send().await.expect("allowed");
    assert_eq!(resp.text().await.expect("body"), "ok");
    assert_eq!(lookup.asked(), ["ollama.test"]);
    assert_eq!(*seen.lock().expect("lock"), ["GET /api/tags HTTP/1.1"]);
    server.abort();
}
