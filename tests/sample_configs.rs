//! Every sample deployment in `container-conf/` loads as the container would load it: the
//! container file validates, each broker file it lists exists and validates, and no two brokers of
//! one deployment (all its containers on one host, as `scripts/deploy.sh` starts them) claim the
//! same port: listen, fast (listen - 2), HA (listen + 1) or DLedger peer port.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rmqc::broker::config::load_broker_config;
use rmqc::container::config::LoadedContainerConfig;

fn conf_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    out.sort();
    out
}

/// Checks one deployment (the container files of one directory) and returns how many brokers it has.
fn check_deployment(files: &[PathBuf]) -> usize {
    let mut ports: BTreeMap<u16, String> = BTreeMap::new();
    let mut claim = |port: u16, who: String| {
        if let Some(prev) = ports.insert(port, who.clone()) {
            panic!("port {port} is claimed by {prev} and by {who}");
        }
    };
    let mut brokers = 0;
    for c in files {
        let loaded = LoadedContainerConfig::load(c, None, None)
            .unwrap_or_else(|e| panic!("container config {}: {e}", c.display()));
        claim(loaded.config.listen_port, format!("{} (admin port)", c.display()));
        assert!(!loaded.broker_paths.is_empty(), "{} hosts no broker", c.display());
        for b in &loaded.broker_paths {
            let plan = load_broker_config(b).unwrap_or_else(|e| panic!("broker config {}: {e}", b.display()));
            let name = b.display().to_string();
            let port = plan.config.listen_port;
            claim(port, format!("{name} (listen)"));
            claim(port - 2, format!("{name} (fast)"));
            claim(port + 1, format!("{name} (HA)"));
            if plan.config.enable_dleger_commit_log {
                let peers = rmqc::dledger::server::parse_peers(plan.config.dleger_peers.as_deref().unwrap()).unwrap();
                let me = plan.config.dleger_self_id.clone().unwrap();
                let mine = peers.iter().find(|p| p.id == me).expect("dLegerSelfId is among dLegerPeers");
                let port: u16 = mine.addr.rsplit_once(':').unwrap().1.parse().unwrap();
                claim(port, format!("{name} (DLedger)"));
            }
            brokers += 1;
        }
    }
    brokers
}

#[test]
fn every_sample_deployment_loads_without_port_clashes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("container-conf");
    let single = check_deployment(&[root.join("broker-container.conf")]);
    assert!(single >= 1);
    let mut deployments = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if dir.is_dir() {
            let files = conf_files(&dir);
            assert!(!files.is_empty(), "{} has no container config", dir.display());
            let n = check_deployment(&files);
            assert!(n >= files.len(), "{}: {n} brokers", dir.display());
            deployments += 1;
        }
    }
    assert!(deployments >= 2, "the cross-deployment samples are missing");
}
