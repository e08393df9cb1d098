//! Names → records, from the catalog as this server has applied it (a stale
//! read: any server answers, with or without a leader). Pure: no I/O, the
//! caller passes the catalog and the randomness.

use std::collections::HashSet;
use std::net::IpAddr;

use hickory_proto::op::Query;
use hickory_proto::rr::rdata::{A, AAAA, SOA, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::ProtoError;
use rand::Rng;
use sextant_state::catalog::{Catalog, CheckStatus, ServiceInstance};

use crate::config::DnsConfig;

/// The one datacenter a Sextant cluster is (the HTTP API says the same).
const DATACENTER: &str = "dc1";

/// What a question names, relative to the domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// `NAME.service`, `TAG.NAME.service`, `_NAME._TAG.service` (each
    /// optionally followed by the datacenter label).
    Service { name: String, tag: Option<String> },
    /// `NODE.node` (optionally followed by the datacenter label).
    Node { name: String },
    /// `HEX.addr`: an address spelled in hex (`7f000001`), the SRV target of
    /// an instance with an address of its own (as in Consul).
    Addr { ip: IpAddr },
}

/// A question's name, classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not under the domain: refused, since this server does no recursion.
    Outside,
    /// Under the domain but names nothing this server knows how to answer.
    Unknown,
    Lookup(Lookup),
}

/// How a question is answered; `server` turns it into a response code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// NOERROR with records.
    Records {
        answers: Vec<Record>,
        additionals: Vec<Record>,
    },
    /// NOERROR, the name exists but has no records of the type asked for.
    NoData,
    /// NXDOMAIN: nothing healthy by that name.
    NxDomain,
    /// REFUSED: outside the domain, or not class IN.
    Refused,
}

/// Answers questions for one domain.
#[derive(Clone, Debug)]
pub struct Resolver {
    domain: Name,
    only_passing: bool,
    udp_answer_limit: usize,
    ttl: u32,
    soa: Record,
}

impl Resolver {
    pub fn new(config: &DnsConfig) -> Result<Self, ProtoError> {
        let mut domain = Name::from_ascii(&config.domain)?.to_lowercase();
        domain.set_fqdn(true);
        let ttl = u32::try_from(config.ttl.as_secs()).unwrap_or(u32::MAX);
        let soa = Record::from_rdata(
            domain.clone(),
            ttl,
            RData::SOA(SOA::new(
                Name::from_ascii("ns")?.append_domain(&domain)?,
                Name::from_ascii("hostmaster")?.append_domain(&domain)?,
                1,
                3600,
                600,
                86400,
                ttl,
            )),
        );
        Ok(Self {
            domain,
            only_passing: config.only_passing,
            udp_answer_limit: config.udp_answer_limit,
            ttl,
            soa,
        })
    }

    /// The zone's SOA, for the authority section of NXDOMAIN and empty answers.
    pub fn soa(&self) -> &Record {
        &self.soa
    }

    /// Most answers in one UDP response.
    pub fn udp_answer_limit(&self) -> usize {
        self.udp_answer_limit
    }

    /// Classifies a question's name.
    pub fn parse(&self, qname: &Name) -> Parsed {
        if !self.domain.zone_of(qname) {
            return Parsed::Outside;
        }
        let relative = usize::from(qname.num_labels() - self.domain.num_labels());
        let mut labels = Vec::with_capacity(relative);
        for label in qname.iter().take(relative) {
            match std::str::from_utf8(label) {
                Ok(label) => labels.push(label.to_ascii_lowercase()),
                Err(_) => return Parsed::Unknown,
            }
        }
        if labels.last().map(String::as_str) == Some(DATACENTER) {
            labels.pop();
        }
        let Some(kind) = labels.pop() else {
            return Parsed::Unknown;
        };
        let lookup = match (kind.as_str(), labels.as_slice()) {
            ("service", [name]) => Lookup::Service {
                name: name.clone(),
                tag: None,
            },
            ("service", [first, second])
                if first.len() > 1
                    && second.len() > 1
                    && first.starts_with('_')
                    && second.starts_with('_') =>
            {
                // RFC 2782 `_service._proto`: the protocol is a tag, and
                // `_tcp` (what most SRV clients send) means any tag, as in Consul.
                let tag = &second[1..];
                Lookup::Service {
                    name: first[1..].to_string(),
                    tag: (tag != "tcp").then(|| tag.to_string()),
                }
            }
            ("service", [tag, name]) => Lookup::Service {
                name: name.clone(),
                tag: Some(tag.clone()),
            },
            ("node", [name]) => Lookup::Node { name: name.clone() },
            ("addr", [hex]) => match parse_hex_ip(hex) {
                Some(ip) => Lookup::Addr { ip },
                None => return Parsed::Unknown,
            },
            _ => return Parsed::Unknown,
        };
        Parsed::Lookup(lookup)
    }

    /// Answers one question from `catalog`, in a random (weighted) order.
    pub fn resolve(&self, catalog: &Catalog, query: &Query, rng: &mut impl Rng) -> Answer {
        if query.query_class() != DNSClass::IN {
            return Answer::Refused;
        }
        let qtype = query.query_type();
        match self.parse(query.name()) {
            Parsed::Outside => Answer::Refused,
            Parsed::Unknown => Answer::NxDomain,
            Parsed::Lookup(Lookup::Node { name }) => {
                let node = catalog
                    .node(&name)
                    .or_else(|| catalog.nodes().find(|n| n.name.eq_ignore_ascii_case(&name)));
                match node {
                    None => Answer::NxDomain,
                    Some(node) => {
                        let answers: Vec<Record> = node
                            .address
                            .parse::<IpAddr>()
                            .ok()
                            .and_then(|ip| self.address(query.name(), ip, qtype))
                            .into_iter()
                            .collect();
                        records(answers, Vec::new())
                    }
                }
            }
            Parsed::Lookup(Lookup::Addr { ip }) => records(
                self.address(query.name(), ip, qtype).into_iter().collect(),
                Vec::new(),
            ),
            Parsed::Lookup(Lookup::Service { name, tag }) => {
                let healthy = self.healthy(catalog, &name, tag.as_deref());
                if healthy.is_empty() {
                    return Answer::NxDomain;
                }
                let ordered = weighted_order(healthy, rng);
                if qtype == RecordType::SRV {
                    self.srv(query.name(), &ordered)
                } else {
                    let mut seen = HashSet::new();
                    let answers = ordered
                        .iter()
                        .filter_map(|(instance, _)| address_of(instance))
                        .filter(|ip| seen.insert(*ip))
                        .filter_map(|ip| self.address(query.name(), ip, qtype))
                        .collect();
                    records(answers, Vec::new())
                }
            }
        }
    }

    /// The instances to answer with and their weights.
    fn healthy<'a>(
        &self,
        catalog: &'a Catalog,
        name: &str,
        tag: Option<&str>,
    ) -> Vec<(ServiceInstance<'a>, u32)> {
        let mut instances = catalog.instances(name);
        if instances.is_empty() {
            // DNS names are case-insensitive; service names are not.
            let names = catalog.service_names();
            if let Some(actual) = names.keys().find(|n| n.eq_ignore_ascii_case(name)) {
                instances = catalog.instances(actual);
            }
        }
        instances
            .into_iter()
            .filter(|i| {
                tag.is_none_or(|t| i.service.tags.iter().any(|s| s.eq_ignore_ascii_case(t)))
            })
            .filter_map(|i| {
                let weight = match i.status() {
                    CheckStatus::Passing => i.service.weights.passing,
                    CheckStatus::Warning if !self.only_passing => i.service.weights.warning,
                    _ => return None,
                };
                Some((i, weight))
            })
            .collect()
    }

    fn srv(&self, qname: &Name, ordered: &[(ServiceInstance<'_>, u32)]) -> Answer {
        let mut answers = Vec::with_capacity(ordered.len());
        let mut additionals = Vec::new();
        let mut seen = HashSet::new();
        for (instance, weight) in ordered {
            let Some((target, ip)) = self.srv_target(instance) else {
                continue;
            };
            let weight = u16::try_from(*weight).unwrap_or(u16::MAX);
            answers.push(Record::from_rdata(
                qname.clone(),
                self.ttl,
                RData::SRV(SRV::new(1, weight, instance.service.port, target.clone())),
            ));
            if let Some(ip) = ip {
                if seen.insert((target.clone(), ip)) {
                    let qtype = if ip.is_ipv4() {
                        RecordType::A
                    } else {
                        RecordType::AAAA
                    };
                    additionals.extend(self.address(&target, ip, qtype));
                }
            }
        }
        records(answers, additionals)
    }

    /// The SRV target of an instance and the address to put beside it:
    /// `<node>.node.dc1.<domain>` for an instance at its node's address, and
    /// `<hex>.addr.dc1.<domain>` for one with an address of its own, so that
    /// two instances on one node at different addresses stay distinct and
    /// `<node>.node` always means the node's own address.
    fn srv_target(&self, instance: &ServiceInstance<'_>) -> Option<(Name, Option<IpAddr>)> {
        let own = &instance.service.address;
        if own.is_empty() || *own == instance.node.address {
            let target = self.node_target(&instance.node.name).ok()?;
            return Some((target, instance.node.address.parse().ok()));
        }
        match own.parse::<IpAddr>() {
            Ok(ip) => {
                let hex = hex_ip(ip);
                let target = Name::from_labels([hex.as_bytes(), b"addr", DATACENTER.as_bytes()])
                    .ok()?
                    .append_domain(&self.domain)
                    .ok()?;
                Some((target, Some(ip)))
            }
            // A host name: the target is the name itself, resolved elsewhere.
            Err(_) => {
                let mut target = Name::from_ascii(own).ok()?;
                target.set_fqdn(true);
                Some((target, None))
            }
        }
    }

    /// `<node>.node.dc1.<domain>`
    fn node_target(&self, node: &str) -> Result<Name, ProtoError> {
        Name::from_labels([node.as_bytes(), b"node", DATACENTER.as_bytes()])?
            .append_domain(&self.domain)
    }

    /// An A or AAAA record for `ip` if the question asked for its family.
    fn address(&self, name: &Name, ip: IpAddr, qtype: RecordType) -> Option<Record> {
        let data = match (ip, qtype) {
            (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => RData::A(A(v4)),
            (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => RData::AAAA(AAAA(v6)),
            _ => return None,
        };
        Some(Record::from_rdata(name.clone(), self.ttl, data))
    }
}

fn records(answers: Vec<Record>, additionals: Vec<Record>) -> Answer {
    if answers.is_empty() {
        Answer::NoData
    } else {
        Answer::Records {
            answers,
            additionals,
        }
    }
}

/// `127.0.0.1` → `7f000001`; IPv6 as its 32 hex digits.
fn hex_ip(ip: IpAddr) -> String {
    let octets = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    octets.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex_ip(hex: &str) -> Option<IpAddr> {
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// The instance's address: its own, or its node's when it has none.
fn address_of(instance: &ServiceInstance<'_>) -> Option<IpAddr> {
    let address = if instance.service.address.is_empty() {
        &instance.node.address
    } else {
        &instance.service.address
    };
    address.parse().ok()
}

/// A random order in which heavier instances tend to come first
/// (Efraimidis–Spirakis: sort by `u^(1/w)`, here as `-ln(u)/w` ascending);
/// weight 0 goes last.
fn weighted_order<T>(items: Vec<(T, u32)>, rng: &mut impl Rng) -> Vec<(T, u32)> {
    let mut keyed: Vec<(f64, (T, u32))> = items
        .into_iter()
        .map(|(item, weight)| {
            let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
            let key = if weight == 0 {
                f64::INFINITY
            } else {
                -u.ln() / f64::from(weight)
            };
            (key, (item, weight))
        })
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
    keyed.into_iter().map(|(_, item)| item).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use sextant_state::catalog::Weights;

    fn resolver() -> Resolver {
        Resolver::new(&DnsConfig::default()).expect("default config")
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).expect("name")
    }

    fn service(name: &str, tag: Option<&str>) -> Parsed {
        Parsed::Lookup(Lookup::Service {
            name: name.into(),
            tag: tag.map(Into::into),
        })
    }

    #[test]
    fn parses_service_names() {
        let r = resolver();
        assert_eq!(r.parse(&name("web.service.consul.")), service("web", None));
        assert_eq!(r.parse(&name("Web.Service.CONSUL.")), service("web", None));
        assert_eq!(
            r.parse(&name("web.service.dc1.consul.")),
            service("web", None)
        );
        assert_eq!(
            r.parse(&name("v1.web.service.consul.")),
            service("web", Some("v1"))
        );
        assert_eq!(
            r.parse(&name("_web._v1.service.consul.")),
            service("web", Some("v1"))
        );
        assert_eq!(
            r.parse(&name("_web._tcp.service.dc1.consul.")),
            service("web", None)
        );
    }

    #[test]
    fn parses_node_names_and_rejects_the_rest() {
        let r = resolver();
        assert_eq!(
            r.parse(&name("n1.node.consul.")),
            Parsed::Lookup(Lookup::Node { name: "n1".into() })
        );
        assert_eq!(
            r.parse(&name("n1.node.dc1.consul.")),
            Parsed::Lookup(Lookup::Node { name: "n1".into() })
        );
        assert_eq!(r.parse(&name("google.com.")), Parsed::Outside);
        assert_eq!(r.parse(&name("consul.")), Parsed::Unknown);
        assert_eq!(r.parse(&name("service.consul.")), Parsed::Unknown);
        assert_eq!(r.parse(&name("a.b.c.service.consul.")), Parsed::Unknown);
        assert_eq!(r.parse(&name("web.query.consul.")), Parsed::Unknown);
    }

    #[test]
    fn hex_addresses_round_trip() {
        let r = resolver();
        for ip in ["127.0.0.1", "10.1.2.3", "2001:db8::1"] {
            let ip: IpAddr = ip.parse().expect("ip");
            let qname = name(&format!("{}.addr.dc1.consul.", hex_ip(ip)));
            assert_eq!(r.parse(&qname), Parsed::Lookup(Lookup::Addr { ip }));
        }
        assert_eq!(r.parse(&name("7f0000.addr.consul.")), Parsed::Unknown);
        assert_eq!(r.parse(&name("zz000001.addr.consul.")), Parsed::Unknown);
    }

    #[test]
    fn a_custom_domain_is_honoured() {
        let r = Resolver::new(&DnsConfig {
            domain: "sextant.internal".into(),
            ..DnsConfig::default()
        })
        .expect("config");
        assert_eq!(
            r.parse(&name("web.service.sextant.internal.")),
            service("web", None)
        );
        assert_eq!(r.parse(&name("web.service.consul.")), Parsed::Outside);
    }

    #[test]
    fn weighted_order_is_a_permutation_and_prefers_weight() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut heavy_first = 0;
        for _ in 0..1000 {
            let order = weighted_order(vec![("light", 1), ("heavy", 9), ("none", 0)], &mut rng);
            let names: Vec<_> = order.iter().map(|(n, _)| *n).collect();
            assert_eq!(names.len(), 3);
            assert_eq!(names[2], "none");
            if names[0] == "heavy" {
                heavy_first += 1;
            }
        }
        // P(heavy first) = 0.9.
        assert!((850..=950).contains(&heavy_first), "{heavy_first}");
    }

    use sextant_state::catalog::{Check, Node, Service};
    use sextant_state::{Command, Op, StateMachine};

    /// Node `n1` at 10.0.0.1 with `web` instances: (id, address, tags, status).
    fn machine(instances: &[(&str, &str, &[&str], CheckStatus)]) -> StateMachine {
        let mut machine = StateMachine::new();
        let mut index = 0;
        let mut apply = |machine: &mut StateMachine, op| {
            index += 1;
            machine.apply(index, &Command { now_ms: 1, op });
        };
        let node = Node {
            name: "n1".into(),
            address: "10.0.0.1".into(),
            ..Node::default()
        };
        apply(&mut machine, Op::RegisterNode { node });
        for (i, (id, address, tags, status)) in instances.iter().enumerate() {
            let service = Service {
                id: (*id).into(),
                name: "web".into(),
                address: (*address).into(),
                port: 8000 + i as u16,
                tags: tags.iter().map(|t| t.to_string()).collect(),
                weights: Weights {
                    passing: 10,
                    warning: 1,
                },
                ..Service::default()
            };
            let check = Check {
                node: "n1".into(),
                id: format!("service:{id}"),
                name: "ttl".into(),
                service_id: Some((*id).into()),
                status: *status,
                ..Check::default()
            };
            apply(
                &mut machine,
                Op::RegisterService {
                    node: "n1".into(),
                    service,
                    checks: vec![check],
                    replace_checks: true,
                },
            );
        }
        machine
    }

    fn ask(r: &Resolver, machine: &StateMachine, qname: &str, qtype: RecordType) -> Answer {
        let mut rng = StdRng::seed_from_u64(1);
        r.resolve(
            machine.catalog(),
            &Query::query(name(qname), qtype),
            &mut rng,
        )
    }

    fn answer_data(answer: &Answer) -> Vec<String> {
        let Answer::Records { answers, .. } = answer else {
            return Vec::new();
        };
        let mut data: Vec<String> = answers.iter().map(|r| r.data.to_string()).collect();
        data.sort();
        data
    }

    #[test]
    fn only_healthy_instances_are_answered() {
        let m = machine(&[
            ("a", "10.0.0.2", &["v1"], CheckStatus::Passing),
            ("b", "", &["v2"], CheckStatus::Warning),
            ("c", "10.0.0.4", &["v1"], CheckStatus::Critical),
            ("d", "10.0.0.5", &[], CheckStatus::Maintenance),
        ]);
        let r = resolver();
        // b has no address of its own: its node's.
        assert_eq!(
            answer_data(&ask(&r, &m, "web.service.consul.", RecordType::A)),
            ["10.0.0.1", "10.0.0.2"]
        );
        assert_eq!(
            answer_data(&ask(&r, &m, "v1.web.service.consul.", RecordType::A)),
            ["10.0.0.2"]
        );
        let strict = Resolver::new(&DnsConfig {
            only_passing: true,
            ..DnsConfig::default()
        })
        .expect("config");
        assert_eq!(
            answer_data(&ask(&strict, &m, "web.service.consul.", RecordType::A)),
            ["10.0.0.2"]
        );
        assert_eq!(
            ask(&r, &m, "v3.web.service.consul.", RecordType::A),
            Answer::NxDomain
        );
        assert_eq!(
            ask(&r, &m, "web.service.consul.", RecordType::AAAA),
            Answer::NoData
        );
        assert_eq!(ask(&r, &m, "example.com.", RecordType::A), Answer::Refused);
    }

    #[test]
    fn srv_answers_carry_weights_ports_and_targets() {
        let m = machine(&[
            ("a", "10.0.0.2", &[], CheckStatus::Passing),
            ("b", "", &[], CheckStatus::Warning),
        ]);
        let answer = ask(
            &resolver(),
            &m,
            "_web._tcp.service.consul.",
            RecordType::SRV,
        );
        assert_eq!(
            answer_data(&answer),
            [
                "1 1 8001 n1.node.dc1.consul.",
                "1 10 8000 0a000002.addr.dc1.consul."
            ]
        );
        let Answer::Records { additionals, .. } = answer else {
            panic!("records expected");
        };
        let mut extra: Vec<String> = additionals
            .iter()
            .map(|r| format!("{} {}", r.name, r.data))
            .collect();
        extra.sort();
        assert_eq!(
            extra,
            [
                "0a000002.addr.dc1.consul. 10.0.0.2",
                "n1.node.dc1.consul. 10.0.0.1"
            ]
        );
    }

    #[test]
    fn nodes_resolve_to_their_address() {
        let m = machine(&[]);
        let r = resolver();
        assert_eq!(
            answer_data(&ask(&r, &m, "N1.node.consul.", RecordType::A)),
            ["10.0.0.1"]
        );
        assert_eq!(
            ask(&r, &m, "n2.node.consul.", RecordType::A),
            Answer::NxDomain
        );
    }
}
