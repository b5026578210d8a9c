//! The IKEv2 message decoder (`ike::decode_message`), which the coming IKE source feeds
//! with every UDP 500/4500 datagram, on any bytes. Beyond not panicking: a message it
//! accepts encodes to bytes that decode to the same message (nothing is lost or invented
//! between what we read and what we would answer from it).

/// Decode the input as one IKEv2 message.
pub fn run(data: &[u8]) {
    let Ok(m) = ike::decode_message(data) else {
        return;
    };
    let again = ike::decode_message(&m.encode());
    assert_eq!(again.as_ref(), Ok(&m), "decode(encode(m)) differs from m");
}
