//! INFORMATIONAL exchanges (RFC 7296 §1.4): liveness checks and Deletes, both directions.

use super::endpoint::Ctx;
use super::ike_sa::{IkeSa, State};
use super::Event;
use crate::codec::{exchange, protocol, Delete, Message, Payload};

/// Answers a peer's INFORMATIONAL request: Deletes of the IKE SA or of our Child SA.
pub(super) fn on_request(sa: &mut IkeSa, ctx: &mut Ctx<'_>, datagram: &[u8], msg: &Message) {
    let Ok(inner) = sa.open(datagram, msg) else {
        return;
    };
    let mut reply = Vec::new();
    let mut ike_deleted = false;
    for payload in &inner {
        let Payload::Delete(d) = payload else {
            continue;
        };
        match d.protocol {
            protocol::IKE => ike_deleted = true,
            protocol::ESP => {
                for spi in &d.spis {
                    let Some(at) = sa
                        .children
                        .iter()
                        .position(|c| spi.as_slice() == c.1.to_be_bytes())
                    else {
                        continue;
                    };
                    let (spi_in, spi_out) = sa.children.remove(at);
                    // §1.4.1: answer with a Delete of our inbound half.
                    reply.push(esp_delete(spi_in));
                    ctx.events.push(Event::ChildDeleted {
                        sa: sa.id(),
                        spi_in,
                        spi_out,
                    });
                }
            }
            _ => {}
        }
    }
    if ike_deleted {
        reply.clear(); // the response to an IKE SA Delete is empty
    }
    let id = msg.header.message_id;
    let bytes = sa.seal(ctx, exchange::INFORMATIONAL, true, id, &reply);
    sa.send_response(ctx, id, bytes);
    if ike_deleted {
        super::ike_rekey::on_deleted_in_collision(sa, ctx);
        ctx.events.push(Event::Deleted { sa: sa.id() });
        sa.fail(ctx, None);
    }
}

/// Sends an INFORMATIONAL request with `payloads`; false unless established and idle (window 1).
pub(super) fn send_request(sa: &mut IkeSa, ctx: &mut Ctx<'_>, payloads: &[Payload]) -> bool {
    if sa.state != State::Established || sa.outstanding.is_some() {
        return false;
    }
    let id = sa.next_request_id;
    let bytes = sa.seal(ctx, exchange::INFORMATIONAL, false, id, payloads);
    sa.next_request_id = id.wrapping_add(1);
    sa.send_request(ctx, id, bytes);
    true
}

/// Starts deleting the IKE SA.
pub(super) fn delete_ike(sa: &mut IkeSa, ctx: &mut Ctx<'_>) -> bool {
    let delete = Payload::Delete(Delete {
        protocol: protocol::IKE,
        spi_size: 0,
        spis: Vec::new(),
    });
    let sent = send_request(sa, ctx, &[delete]);
    if sent {
        sa.state = State::Deleting;
    }
    sent
}

/// Starts deleting our Child SA with inbound SPI `spi_in`.
pub(super) fn delete_child(sa: &mut IkeSa, ctx: &mut Ctx<'_>, spi_in: u32) -> bool {
    let Some(at) = sa.children.iter().position(|c| c.0 == spi_in) else {
        return false;
    };
    let spi_out = sa.children[at].1;
    let sent = send_request(sa, ctx, &[esp_delete(spi_in)]);
    if sent {
        // Our inbound half is gone the moment we ask; the peer answers with its own.
        ctx.events.push(Event::ChildDeleted {
            sa: sa.id(),
            spi_in,
            spi_out,
        });
        sa.children.remove(at);
    }
    sent
}

/// The peer's response to our INFORMATIONAL request.
pub(super) fn on_response(sa: &mut IkeSa, ctx: &mut Ctx<'_>, datagram: &[u8], msg: &Message) {
    if sa.open(datagram, msg).is_err() {
        return;
    }
    sa.outstanding = None;
    if sa.state == State::Deleting {
        ctx.events.push(Event::Deleted { sa: sa.id() });
        sa.fail(ctx, None);
    }
}

pub(super) fn esp_delete(spi_in: u32) -> Payload {
    Payload::Delete(Delete {
        protocol: protocol::ESP,
        spi_size: 4,
        spis: vec![spi_in.to_be_bytes().to_vec()],
    })
}
