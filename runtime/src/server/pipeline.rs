//! The synchronous query pipeline: parse, check, decide, build; and the
//! upstream jobs a decision may need (forward, or complete a rewrite).

use super::*;

/// The outcome of the synchronous part of the pipeline.
pub(super) enum Step {
    /// Send these bytes (or nothing).
    Done(Option<Vec<u8>>),
    /// Needs an upstream exchange first (boxed: rare, and large).
    Upstream(Box<Job>),
}

/// Upstream work for one query.
pub(super) struct Job {
    req: Message,
    kind: JobKind,
}

pub(super) enum JobKind {
    /// Relay the pool's answer; the ECS echo says what our own decision
    /// (to forward) depended on.
    Forward(String, Option<(std::net::IpAddr, u8, u8)>),
    /// Complete a rewrite: append the target's records from the default pool.
    Resolve {
        partial: Box<Message>,
        target: Name,
        ecs: Option<(std::net::IpAddr, u8, u8)>,
    },
}

impl Job {
    /// SERVFAIL for this query without any upstream work.
    pub(super) fn servfail(&self, shared: &Shared, tcp: bool) -> Option<Vec<u8>> {
        let r = answer::error(&self.req, ResponseCode::ServFail);
        reply(shared, r, &self.req, None, tcp)
    }

    pub(super) async fn run(self, shared: &Shared, tcp: bool) -> Option<Vec<u8>> {
        let m = &shared.metrics;
        match self.kind {
            JobKind::Forward(pool, ecs) => {
                let Some(servers) = shared.upstreams.get(&pool) else {
                    tracing::warn!(%pool, "forward to an unknown upstream pool");
                    return reply(
                        shared,
                        answer::error(&self.req, ResponseCode::ServFail),
                        &self.req,
                        None,
                        tcp,
                    );
                };
                match upstream::exchange(servers, &self.req, shared.timeout).await {
                    Ok(mut resp) => {
                        m.upstream_ok.fetch_add(1, Relaxed);
                        m.rcode(u16::from(resp.metadata.response_code));
                        answer::merge_ecs_scope(&mut resp, ecs);
                        let bytes = resp.to_vec().ok()?;
                        let limit = if tcp {
                            usize::from(u16::MAX)
                        } else {
                            answer::udp_limit(&self.req)
                        };
                        if bytes.len() <= limit {
                            Some(bytes)
                        } else {
                            resp.truncate().to_vec().ok()
                        }
                    }
                    Err(e) => {
                        m.upstream_failed.fetch_add(1, Relaxed);
                        tracing::debug!(%pool, error = %e, "upstream failed");
                        reply(
                            shared,
                            answer::error(&self.req, ResponseCode::ServFail),
                            &self.req,
                            None,
                            tcp,
                        )
                    }
                }
            }
            JobKind::Resolve {
                mut partial,
                target,
                ecs,
            } => {
                if let Some(servers) = shared.upstreams.get("default") {
                    let mut q = Message::query();
                    q.metadata.recursion_desired = true;
                    let qtype = self.req.queries.first().map(|q| q.query_type)?;
                    q.add_query(hickory_proto::op::Query::query(target, qtype));
                    match upstream::exchange(servers, &q, shared.timeout).await {
                        Ok(resp) => {
                            m.upstream_ok.fetch_add(1, Relaxed);
                            // Data from elsewhere: not authoritative, and the
                            // chain's last name decides the RCODE (RFC 6604).
                            partial.metadata.authoritative = false;
                            if resp.metadata.response_code == ResponseCode::NXDomain {
                                partial.metadata.response_code = ResponseCode::NXDomain;
                            }
                            partial.answers.extend(resp.answers);
                        }
                        Err(_) => {
                            m.upstream_failed.fetch_add(1, Relaxed);
                        }
                    }
                }
                reply(shared, *partial, &self.req, ecs, tcp)
            }
        }
    }
}

pub(super) fn reply(
    shared: &Shared,
    r: Message,
    req: &Message,
    ecs: Option<(std::net::IpAddr, u8, u8)>,
    tcp: bool,
) -> Option<Vec<u8>> {
    shared.metrics.rcode(u16::from(r.metadata.response_code));
    answer::finish(r, req, ecs, tcp, shared.upstreams.contains_key("default"))
}

/// The synchronous pipeline: parse, check, decide, build.
pub(super) fn process(
    shared: &Shared,
    packet: &[u8],
    from: SocketAddr,
    tcp: bool,
    listener: &str,
) -> Step {
    let m = &shared.metrics;
    // Never answer a response (reflection loops) or a runt.
    if packet.len() < 12 || packet[2] & 0x80 != 0 {
        m.malformed.fetch_add(1, Relaxed);
        return Step::Done(None);
    }
    // Exactly one question: checked on the raw header first, so a packet
    // claiming 65 535 questions costs nothing to refuse.
    if packet[4..6] != [0, 1] {
        m.malformed.fetch_add(1, Relaxed);
        m.rcode(u16::from(ResponseCode::FormErr.low()));
        return Step::Done(answer::formerr_raw(packet));
    }
    let req = match Message::from_vec(packet) {
        Ok(r) => r,
        Err(_) => {
            m.malformed.fetch_add(1, Relaxed);
            m.rcode(u16::from(ResponseCode::FormErr.low()));
            return Step::Done(answer::formerr_raw(packet));
        }
    };
    if req.metadata.message_type != MessageType::Query {
        return Step::Done(None);
    }
    if let Err(rcode) = answer::precheck(&req) {
        return Step::Done(reply(shared, answer::error(&req, rcode), &req, None, tcp));
    }
    // ECS lives in the OPT record: without one there is nothing to walk.
    let ecs_option = if req.edns.is_some() {
        crate::dns::ecs::query_ecs(packet)
    } else {
        Ok(None)
    };
    let ecs = match ecs_option {
        Ok(e) => e,
        Err(e) => {
            tracing::debug!(client = %from, error = %e, "malformed client subnet");
            m.malformed.fetch_add(1, Relaxed);
            return Step::Done(reply(
                shared,
                answer::error(&req, ResponseCode::FormErr),
                &req,
                None,
                tcp,
            ));
        }
    };
    let Some(q) = req.queries.first() else {
        return Step::Done(None);
    };
    let ascii = q.name.to_lowercase().to_ascii();
    let qname = ascii.strip_suffix('.').unwrap_or(&ascii);
    let facts = QueryFacts {
        client: from.ip(),
        ecs,
        qname: qname.into(),
        qtype: u16::from(q.query_type),
        qclass: class_name(u16::from(q.query_class)),
        transport: if tcp { "tcp" } else { "udp" },
        dnssec_ok: req.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
        recursion_desired: req.metadata.recursion_desired,
    };
    let chain = shared.chain.load();
    let mut ctx = QueryCtx::new(&facts, &shared.geo, listener, &shared.node);
    let pools = |p: &str| shared.upstreams.contains_key(p);
    let mut start = 0;
    let built = loop {
        match chain.decide_from(start, &mut ctx) {
            Some((_, Decision::Records(records))) => {
                m.verdicts[verdict_index("answer")].fetch_add(1, Relaxed);
                break Built::Reply(answer::records(&req, records));
            }
            Some((i, Decision::Decide { verdict, .. })) => {
                let built = answer::build(&req, &verdict, &shared.zone, tcp, &pools);
                if matches!(built, Built::Skip) {
                    start = i + 1;
                    continue;
                }
                m.verdicts[verdict_index(verdict.action())].fetch_add(1, Relaxed);
                break built;
            }
            _ => {
                // No plugin decided: the zone answers its own names, then
                // the default pool, else REFUSED.
                if let Some(b) = answer::from_zone(&req, &shared.zone) {
                    m.verdicts[verdict_index("default_zone")].fetch_add(1, Relaxed);
                    break b;
                }
                if shared.upstreams.contains_key("default") {
                    m.verdicts[verdict_index("default_forward")].fetch_add(1, Relaxed);
                    break Built::Forward("default".into());
                }
                m.verdicts[verdict_index("default_refuse")].fetch_add(1, Relaxed);
                break Built::Reply(answer::error(&req, ResponseCode::Refused));
            }
        }
    };
    m.missing_reads.fetch_add(u64::from(ctx.missing()), Relaxed);
    let ecs_echo = facts.ecs.map(|e| (e.addr, e.source, ctx.ecs_scope()));
    match built {
        Built::Reply(r) => Step::Done(reply(shared, r, &req, ecs_echo, tcp)),
        Built::Drop => {
            m.dropped.fetch_add(1, Relaxed);
            Step::Done(None)
        }
        Built::Forward(pool) => Step::Upstream(Box::new(Job {
            req,
            kind: JobKind::Forward(pool, ecs_echo),
        })),
        Built::ResolveOutside { partial, target } => {
            if shared.upstreams.contains_key("default") {
                Step::Upstream(Box::new(Job {
                    req,
                    kind: JobKind::Resolve {
                        partial: Box::new(partial),
                        target,
                        ecs: ecs_echo,
                    },
                }))
            } else {
                Step::Done(reply(shared, partial, &req, ecs_echo, tcp))
            }
        }
        Built::Skip => Step::Done(None),
    }
}

pub(super) fn class_name(c: u16) -> &'static str {
    match c {
        1 => "IN",
        3 => "CH",
        4 => "HS",
        254 => "NONE",
        255 => "ANY",
        _ => "OTHER",
    }
}
