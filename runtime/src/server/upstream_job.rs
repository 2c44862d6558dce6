//! Upstream work a decision may need, run off the worker's hot loop:
//! forward the query to a pool and relay its answer, or complete a rewrite
//! whose target lies outside the zone.

use super::pipeline::reply;
use super::*;

/// Upstream work for one query.
pub(super) struct Job {
    pub(super) req: Message,
    pub(super) kind: JobKind,
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
                match upstream::exchange_logged(
                    servers,
                    &self.req,
                    shared.timeout,
                    shared.dnstap.as_ref(),
                )
                .await
                {
                    Ok(mut resp) => {
                        m.upstream_ok.fetch_add(1, Relaxed);
                        m.rcode(u16::from(resp.metadata.response_code));
                        answer::merge_ecs_scope(&mut resp, ecs);
                        answer::set_nsid(&mut resp, &self.req, shared.nsid.as_deref());
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
                    match upstream::exchange_logged(
                        servers,
                        &q,
                        shared.timeout,
                        shared.dnstap.as_ref(),
                    )
                    .await
                    {
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
