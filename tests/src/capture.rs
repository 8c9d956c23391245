//! Watching the wire: `tcpdump` on loopback during a scenario, the capture read back as the TCP
//! payload of each direction of each connection, and the secrets a test looks for in it (the
//! tokens in a daemon's database, the hex strings in a tracker's).
//!
//! `tcpdump` needs the Debian package `tcpdump` and root (or CAP_NET_RAW). Where it cannot run,
//! [`Capture::start_or_skip`] says so in one line and the test returns, unless
//! `P2P_REQUIRE_CAPTURE=1` is set (CI), which makes that line a failure.

use crate::process::{READY_TIMEOUT, poll_until, tail, wait_for_exit};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The environment variable that turns "tcpdump cannot run here" into a failure.
pub const REQUIRE_CAPTURE: &str = "P2P_REQUIRE_CAPTURE";

/// A running `tcpdump -i lo -U -w <file>` limited to some TCP ports.
pub struct Capture {
    child: Option<Child>,
    file: PathBuf,
    stderr: PathBuf,
}

impl Capture {
    /// Starts tcpdump on `lo` for TCP traffic to or from any of `ports`, writing packets to
    /// `file` as they come (`-U`), and waits until it says it is listening. `Err` says why it
    /// cannot run.
    pub fn start(file: &Path, ports: &[u16]) -> Result<Self, String> {
        assert!(!ports.is_empty(), "a capture needs ports to watch");
        let filter = format!(
            "tcp and ({})",
            ports
                .iter()
                .map(|p| format!("port {p}"))
                .collect::<Vec<_>>()
                .join(" or ")
        );
        let stderr = file.with_extension("tcpdump.stderr");
        let log = std::fs::File::create(&stderr)
            .map_err(|e| format!("cannot create {}: {e}", stderr.display()))?;
        let child = Command::new("tcpdump")
            // A large buffer (KiB): loopback delivers megabytes in milliseconds.
            .args(["-i", "lo", "-n", "-U", "-s", "0", "-B", "65536", "-w"])
            .arg(file)
            .arg(&filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run tcpdump ({e}); install the Debian package tcpdump"))?;
        let mut capture = Self {
            child: Some(child),
            file: file.to_path_buf(),
            stderr,
        };
        let child = capture.child.as_mut().unwrap();
        let stderr = capture.stderr.clone();
        let ready = poll_until(READY_TIMEOUT, crate::POLL_INTERVAL, || {
            let text = std::fs::read_to_string(&stderr).unwrap_or_default();
            if text.contains("listening on") {
                return Ok(());
            }
            match child.try_wait().expect("try_wait") {
                Some(status) => Err(format!(
                    "tcpdump exited with {status} before listening (it needs root or \
                     CAP_NET_RAW): {}",
                    text.trim()
                )),
                None => Err(String::new()),
            }
        });
        match ready {
            Ok(()) => Ok(capture),
            Err(why) if why.is_empty() => Err(format!(
                "tcpdump did not say `listening on` within {READY_TIMEOUT:?}: {}",
                tail(&capture.stderr, 5)
            )),
            Err(why) => Err(why),
        }
    }

    /// [`start`](Self::start), or, where tcpdump cannot run, one line saying so on stderr and
    /// `None` (the test then returns); with `P2P_REQUIRE_CAPTURE=1`, a panic with that line.
    pub fn start_or_skip(file: &Path, ports: &[u16]) -> Option<Self> {
        match Self::start(file, ports) {
            Ok(capture) => Some(capture),
            Err(why) => {
                let line = format!("packet capture unavailable, test skipped: {why}");
                if std::env::var(REQUIRE_CAPTURE).is_ok_and(|v| v == "1") {
                    panic!("{line} ({REQUIRE_CAPTURE}=1)");
                }
                eprintln!("{line}");
                None
            }
        }
    }

    /// Waits until the capture file holds `needle` (tcpdump writes each packet as it reads it,
    /// but reads the kernel's buffer a little behind the traffic): once the last thing the
    /// scenario sent is in the file, everything before it is too.
    pub fn wait_for(&self, needle: &[u8]) {
        let found = poll_until(READY_TIMEOUT, crate::POLL_INTERVAL, || {
            let bytes = std::fs::read(&self.file).unwrap_or_default();
            if needles_found(&bytes, &[needle]).is_empty() {
                Err(format!(
                    "the capture file does not hold {:?}",
                    String::from_utf8_lossy(needle)
                ))
            } else {
                Ok(())
            }
        });
        if let Err(why) = found {
            panic!("{why} after {READY_TIMEOUT:?}");
        }
    }

    /// Stops tcpdump (SIGINT), waits for it to exit so the file is complete, and returns the
    /// capture file's bytes.
    pub fn stop(mut self) -> Vec<u8> {
        let mut child = self.child.take().expect("tcpdump runs");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("cannot signal tcpdump");
        let status = wait_for_exit(&mut child, "tcpdump after SIGINT");
        assert!(
            status.success(),
            "tcpdump exited with {status}: {}",
            tail(&self.stderr, 10)
        );
        // tcpdump ends with "N packets captured", "N packets received by filter", "N packets
        // dropped by kernel": a capture that missed packets proves nothing.
        let report = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let dropped = report
            .lines()
            .find_map(|l| l.strip_suffix(" packets dropped by kernel"))
            .and_then(|n| n.trim().parse::<u64>().ok());
        assert_eq!(
            dropped,
            Some(0),
            "tcpdump missed packets (or did not say): {}",
            report.trim()
        );
        std::fs::read(&self.file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", self.file.display()))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The TCP payload of a capture file (pcap, as tcpdump writes it), one byte string per
/// direction of each connection, in the order the packets were captured (on loopback nothing
/// is reordered; a retransmission would only repeat bytes). Segment boundaries are gone, so a
/// secret split over two packets is found whole.
pub fn tcp_streams(pcap: &[u8]) -> Vec<Vec<u8>> {
    assert!(pcap.len() >= 24, "capture file of {} bytes", pcap.len());
    let magic = u32::from_le_bytes(pcap[..4].try_into().unwrap());
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        other => panic!("not a pcap file (magic {other:#x})"),
    };
    let u32_at = |b: &[u8], at: usize| {
        let raw: [u8; 4] = b[at..at + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(raw)
        } else {
            u32::from_be_bytes(raw)
        }
    };
    let link_header = match u32_at(pcap, 20) {
        1 => 14,   // Ethernet (Linux loopback)
        113 => 16, // Linux cooked
        276 => 20, // Linux cooked v2
        0 => 4,    // BSD loopback
        other => panic!("capture of link type {other}"),
    };
    let mut streams: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut order: Vec<Vec<u8>> = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let len = u32_at(pcap, at + 8) as usize;
        let packet = &pcap[(at + 16).min(pcap.len())..(at + 16 + len).min(pcap.len())];
        at += 16 + len;
        let Some(ip) = packet.get(link_header..) else {
            continue;
        };
        let (tcp, addrs) = match ip.first().map(|b| b >> 4) {
            Some(4) if ip.len() >= 20 && ip[9] == 6 => {
                let ihl = (ip[0] & 0x0f) as usize * 4;
                let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
                (
                    &ip[ihl.min(ip.len())..total.min(ip.len())],
                    ip[12..20].to_vec(),
                )
            }
            Some(6) if ip.len() >= 40 && ip[6] == 6 => {
                let total = 40 + u16::from_be_bytes([ip[4], ip[5]]) as usize;
                (&ip[40..total.min(ip.len())], ip[8..40].to_vec())
            }
            _ => continue,
        };
        if tcp.len() < 20 {
            continue;
        }
        let offset = (tcp[12] >> 4) as usize * 4;
        let payload = tcp.get(offset..).unwrap_or_default();
        if payload.is_empty() {
            continue;
        }
        let mut flow = addrs;
        flow.extend_from_slice(&tcp[..4]);
        if !streams.contains_key(&flow) {
            order.push(flow.clone());
        }
        streams.entry(flow).or_default().extend_from_slice(payload);
    }
    order
        .into_iter()
        .map(|flow| streams.remove(&flow).unwrap())
        .collect()
}

/// The indices of the `needles` (each at least 4 bytes) that occur in `haystack`, in one pass
/// over it however many needles there are (a capture is megabytes; the windows of a file
/// checked against it are thousands).
pub fn needles_found(haystack: &[u8], needles: &[&[u8]]) -> BTreeSet<usize> {
    let prefix = |b: &[u8]| u32::from_le_bytes(b[..4].try_into().unwrap());
    // A bit per 24-bit start: most positions of a haystack are passed over on one lookup.
    let mut starts = vec![0u64; 1 << 18];
    let mut by_prefix: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, needle) in needles.iter().enumerate() {
        assert!(needle.len() >= 4, "needle {i} is shorter than 4 bytes");
        let p = prefix(needle);
        let bit = (p & 0x00ff_ffff) as usize;
        starts[bit / 64] |= 1 << (bit % 64);
        by_prefix.entry(p).or_default().push(i);
    }
    let mut found = BTreeSet::new();
    for at in 0..haystack.len().saturating_sub(3) {
        let p = prefix(&haystack[at..]);
        let bit = (p & 0x00ff_ffff) as usize;
        if starts[bit / 64] & (1 << (bit % 64)) == 0 {
            continue;
        }
        for &i in by_prefix.get(&p).into_iter().flatten() {
            if haystack[at..].starts_with(needles[i]) {
                found.insert(i);
            }
        }
    }
    found
}

/// The offsets in `content` of the 32-byte windows, taken every `stride` bytes, that occur
/// in `haystack`: any run of `stride + 31` bytes of `content` in it is found.
pub fn windows_found(haystack: &[u8], content: &[u8], stride: usize) -> Vec<usize> {
    const WINDOW: usize = 32;
    let offsets: Vec<usize> = (0..content.len().saturating_sub(WINDOW - 1))
        .step_by(stride)
        .collect();
    let needles: Vec<&[u8]> = offsets.iter().map(|&o| &content[o..o + WINDOW]).collect();
    needles_found(haystack, &needles)
        .into_iter()
        .map(|i| offsets[i])
        .collect()
}

/// Every string of 64 hex digits in `bytes`: each maximal run of hex digits of 64 or more, as
/// every 64-digit stretch of it.
pub fn hex64_strings(bytes: &[u8]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut start = 0;
    while start < bytes.len() {
        if !bytes[start].is_ascii_hexdigit() {
            start += 1;
            continue;
        }
        let end = bytes[start..]
            .iter()
            .position(|b| !b.is_ascii_hexdigit())
            .map_or(bytes.len(), |n| start + n);
        if end - start >= 64 {
            for at in start..=end - 64 {
                out.insert(String::from_utf8_lossy(&bytes[at..at + 64]).into_owned());
            }
        }
        start = end;
    }
    out
}

/// The session tokens in a daemon's database file (`<state>/p2pd.redb`): every
/// `"token":"` followed by 64 hex digits in its raw bytes.
pub fn tokens_in(db: &Path) -> BTreeSet<String> {
    let bytes = std::fs::read(db).unwrap_or_else(|e| panic!("cannot read {}: {e}", db.display()));
    let marker = b"\"token\":\"";
    let mut out = BTreeSet::new();
    for at in 0..bytes.len().saturating_sub(marker.len() + 64) {
        if &bytes[at..at + marker.len()] != marker {
            continue;
        }
        let token = &bytes[at + marker.len()..at + marker.len() + 64];
        if token.iter().all(u8::is_ascii_hexdigit) {
            out.insert(String::from_utf8_lossy(token).into_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hex_runs_and_windows() {
        let a = "ab".repeat(32);
        let text = format!("x\"{a}\"y{}z", "0".repeat(65));
        let found = hex64_strings(text.as_bytes());
        assert!(found.contains(&a));
        assert!(found.contains(&"0".repeat(64)));
        assert_eq!(found.len(), 2);
        let content: Vec<u8> = (0..200u8).collect();
        let mut hay = vec![0xffu8; 10];
        hay.extend_from_slice(&content[64..130]);
        assert_eq!(windows_found(&hay, &content, 32), vec![64, 96]);
    }
}
