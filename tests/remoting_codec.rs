//! Byte-exact frame vectors written by hand from `shared/spec/remoting.md` §1-§4, and a property
//! test that encode then decode is the identity.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rmqc::remoting::codec::{decode_frame, DEFAULT_MAX_FRAME_LENGTH};
use rmqc::remoting::command::{LanguageCode, RemotingCommand, SerializeType, FLAG_ONEWAY, FLAG_RESPONSE};

fn frame(serialize: u8, header: &[u8], body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&((4 + header.len() + body.len()) as u32).to_be_bytes());
    v.extend_from_slice(&(((serialize as u32) << 24) | header.len() as u32).to_be_bytes());
    v.extend_from_slice(header);
    v.extend_from_slice(body);
    v
}

fn encode(cmd: &RemotingCommand) -> Vec<u8> {
    let mut out = BytesMut::new();
    cmd.encode_frame(&mut out);
    out.to_vec()
}

fn decode(bytes: &[u8]) -> RemotingCommand {
    let mut buf = BytesMut::from(bytes);
    let cmd = decode_frame(&mut buf, DEFAULT_MAX_FRAME_LENGTH).expect("decodes").expect("whole frame");
    assert!(buf.is_empty(), "the decoder consumed exactly one frame");
    cmd
}

fn cmd(
    code: i32,
    opaque: i32,
    flag: i32,
    remark: Option<&str>,
    ext: &[(&str, &str)],
    st: SerializeType,
    body: &[u8],
) -> RemotingCommand {
    let mut c = RemotingCommand::request(code);
    c.language = LanguageCode::Java;
    c.version = 479;
    c.opaque = opaque;
    c.flag = flag;
    c.remark = remark.map(str::to_string);
    c.ext_fields = ext.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    c.serialize_type = st;
    c.body = Bytes::copy_from_slice(body);
    c
}

#[test]
fn json_request_vector() {
    // The example of remoting.md §2, verbatim.
    let header = br#"{"code":105,"extFields":{"topic":"TopicTest"},"flag":0,"language":"JAVA","opaque":3,"serializeTypeCurrentRPC":"JSON","version":479}"#;
    let want = frame(0, header, b"");
    assert_eq!(&want[..8], &[0, 0, 0, 135, 0, 0, 0, 131]); // 4 + 131 header bytes
    let c = cmd(105, 3, 0, None, &[("topic", "TopicTest")], SerializeType::Json, b"");
    assert_eq!(encode(&c), want);
    assert_eq!(decode(&want), c);
}

#[test]
fn json_response_vector() {
    let header = br#"{"code":17,"flag":1,"language":"JAVA","opaque":3,"remark":"No topic route info in name server for the topic: T","serializeTypeCurrentRPC":"JSON","version":479}"#;
    let want = frame(0, header, b"{}");
    let c = cmd(
        17,
        3,
        FLAG_RESPONSE,
        Some("No topic route info in name server for the topic: T"),
        &[],
        SerializeType::Json,
        b"{}",
    );
    assert_eq!(encode(&c), want);
    let back = decode(&want);
    assert!(back.is_response());
    assert_eq!(back, c);
}

#[test]
fn binary_request_vector() {
    #[rustfmt::skip]
    let header: Vec<u8> = vec![
        0x01, 0x36,             // code 310 (SEND_MESSAGE_V2)
        0x00,                   // language JAVA
        0x01, 0xDF,             // version 479
        0x00, 0x00, 0x00, 0x07, // opaque
        0x00, 0x00, 0x00, 0x02, // flag: oneway
        0x00, 0x00, 0x00, 0x00, // remark length 0 (null)
        0x00, 0x00, 0x00, 0x11, // extFields length 17
        0x00, 0x01, b'a', 0x00, 0x00, 0x00, 0x02, b'p', b'g',
        0x00, 0x01, b'b', 0x00, 0x00, 0x00, 0x01, b'T',
    ];
    assert_eq!(header.len(), 38);
    let want = frame(1, &header, b"hi");
    assert_eq!(&want[..8], &[0, 0, 0, 44, 0x01, 0, 0, 38]);
    let c = cmd(310, 7, FLAG_ONEWAY, None, &[("a", "pg"), ("b", "T")], SerializeType::RocketMq, b"hi");
    assert_eq!(encode(&c), want);
    let back = decode(&want);
    assert!(back.is_oneway());
    assert_eq!(back, c);
}

#[test]
fn binary_response_vector() {
    #[rustfmt::skip]
    let header: Vec<u8> = vec![
        0x00, 0x00,             // code 0 (SUCCESS)
        0x00,                   // language JAVA
        0x01, 0xDF,             // version 479
        0x00, 0x00, 0x00, 0x07, // opaque
        0x00, 0x00, 0x00, 0x01, // flag: response
        0x00, 0x00, 0x00, 0x02, b'O', b'K',
        0x00, 0x00, 0x00, 0x0E, // extFields length 14
        0x00, 0x07, b'q', b'u', b'e', b'u', b'e', b'I', b'd', 0x00, 0x00, 0x00, 0x01, b'1',
    ];
    let want = frame(1, &header, b"");
    let c = cmd(0, 7, FLAG_RESPONSE, Some("OK"), &[("queueId", "1")], SerializeType::RocketMq, b"");
    assert_eq!(encode(&c), want);
    assert_eq!(decode(&want), c);
}

#[test]
fn lenient_json_as_real_clients_send_it() {
    // No serializeTypeCurrentRPC, numbers and booleans as extFields values, language as an ordinal,
    // unknown keys, keys in another order.
    let header = br#"{"opaque":9,"flag":0,"code":11,"language":9,"extFields":{"queueId":3,"commitOffset":-1,"unitMode":false,"n":null},"x":1}"#;
    let c = decode(&frame(0, header, b""));
    assert_eq!(c.code, 11);
    assert_eq!(c.opaque, 9);
    assert_eq!(c.language, LanguageCode::Go);
    assert_eq!(c.ext("queueId"), Some("3"));
    assert_eq!(c.ext("commitOffset"), Some("-1"));
    assert_eq!(c.ext("unitMode"), Some("false"));
    assert_eq!(c.ext("n"), None);
}

#[test]
fn malformed_frames_are_errors() {
    let mut big = BytesMut::from(&[0x01u8, 0x00, 0x00, 0x00, 0, 0, 0, 0][..]);
    assert!(decode_frame(&mut big, DEFAULT_MAX_FRAME_LENGTH).is_err(), "16 MiB + 4 is over the limit");
    let mut past = BytesMut::from(&frame(0, b"{}", b"")[..]);
    past[7] = 0x40; // header length 64 > frame
    assert!(decode_frame(&mut past, DEFAULT_MAX_FRAME_LENGTH).is_err());
    let mut garbage = BytesMut::from(&frame(0, b"{not json", b"")[..]);
    assert!(decode_frame(&mut garbage, DEFAULT_MAX_FRAME_LENGTH).is_err());
    let mut kind = BytesMut::from(&frame(7, b"{}", b"")[..]);
    assert!(decode_frame(&mut kind, DEFAULT_MAX_FRAME_LENGTH).is_err());
    let mut partial = BytesMut::from(&frame(0, br#"{"code":1}"#, b"")[..5]);
    assert!(decode_frame(&mut partial, DEFAULT_MAX_FRAME_LENGTH).unwrap().is_none(), "a partial frame waits");
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-zA-Z0-9 _%|\\-\"\\\\\u{1}\u{2}\n\u{e9}\u{4e2d}]{1,40}"]
}

fn arb_command() -> impl Strategy<Value = RemotingCommand> {
    (
        any::<i16>(),
        0u8..14,
        any::<i16>(),
        any::<i32>(),
        0i32..4,
        proptest::option::of(arb_text()),
        proptest::collection::btree_map("[a-zA-Z]{1,12}", arb_text(), 0..12),
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(code, lang, version, opaque, flag, remark, ext, binary, body)| {
            let st = if binary { SerializeType::RocketMq } else { SerializeType::Json };
            let mut c = RemotingCommand::request(code as i32);
            c.language = LanguageCode::from_code(lang);
            c.version = version as i32;
            c.opaque = opaque;
            c.flag = flag;
            c.serialize_type = st;
            c.body = Bytes::from(body);
            let ext: std::collections::BTreeMap<String, String> = ext;
            if binary {
                // The binary form writes empty strings as absent (remoting.md §3).
                c.remark = remark.filter(|r| !r.is_empty());
                c.ext_fields = ext.into_iter().filter(|(_, v)| !v.is_empty()).collect();
            } else {
                c.remark = remark;
                c.ext_fields = ext.into();
            }
            c
        })
}

proptest! {
    #[test]
    fn encode_then_decode_is_identity(c in arb_command()) {
        let bytes = encode(&c);
        prop_assert_eq!(decode(&bytes), c);
    }

    #[test]
    fn decoder_never_panics_on_garbage(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut buf = BytesMut::from(&data[..]);
        let _ = decode_frame(&mut buf, 1 << 20);
    }
}
