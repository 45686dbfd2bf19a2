//! Frame encode and decode, JSON and ROCKETMQ binary headers, for a SEND_MESSAGE_V2 request with a
//! 1 KiB body and its response.
#![allow(clippy::unwrap_used, missing_docs)] // benches may unwrap; criterion macros generate undocumented items

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rmqc::protocol::codes::request;
use rmqc::protocol::header::SendMessageRequestHeader;
use rmqc::remoting::codec::{decode_frame, DEFAULT_MAX_FRAME_LENGTH};
use rmqc::remoting::{RemotingCommand, SerializeType};

fn send_request(st: SerializeType) -> RemotingCommand {
    let h = SendMessageRequestHeader {
        producer_group: "bench-producer-group".into(),
        topic: "BenchmarkTest".into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: 3,
        sys_flag: 0,
        born_timestamp: 1_763_700_000_000,
        flag: 0,
        properties: Some(
            "UNIQ_KEY\u{1}7F00000100012A9F00000001000000AB\u{2}WAIT\u{1}true\u{2}TAGS\u{1}TagA\u{2}".into(),
        ),
        reconsume_times: Some(0),
        unit_mode: Some(false),
        batch: Some(false),
        max_reconsume_times: None,
        bname: None,
    };
    let mut c = RemotingCommand::request_with_header(request::SEND_MESSAGE_V2, &h.to_v2())
        .with_body(Bytes::from(vec![7u8; 1024]));
    c.opaque = 42;
    c.serialize_type = st;
    c
}

fn send_response(st: SerializeType) -> RemotingCommand {
    let req = send_request(st);
    RemotingCommand::success(&req)
        .with_ext("msgId", "7F00000100002A9F0000000000012345")
        .with_ext("queueId", "3")
        .with_ext("queueOffset", "123456")
        .with_ext("MSG_REGION", "DefaultRegion")
        .with_ext("TRACE_ON", "true")
}

fn bench(c: &mut Criterion) {
    for (name, st) in [("json", SerializeType::Json), ("rocketmq", SerializeType::RocketMq)] {
        let mut g = c.benchmark_group(format!("codec_{name}"));
        g.throughput(Throughput::Elements(1));
        for (what, cmd) in [("send_request_1k", send_request(st)), ("send_response", send_response(st))] {
            let mut frame = BytesMut::new();
            cmd.encode_frame(&mut frame);
            let frame = frame.freeze();
            g.bench_function(format!("encode_{what}"), |b| {
                let mut out = BytesMut::with_capacity(4096);
                b.iter(|| {
                    out.clear();
                    black_box(&cmd).encode_frame(&mut out);
                    black_box(out.len())
                })
            });
            g.bench_function(format!("decode_{what}"), |b| {
                b.iter(|| {
                    let mut buf = BytesMut::from(&frame[..]);
                    black_box(decode_frame(&mut buf, DEFAULT_MAX_FRAME_LENGTH).unwrap())
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
