//! Who holds which file right now: for every (group, file name), the users whose daemons offer
//! it, at which address, and whether they hold all of it.
//!
//! The swarm lives only in memory. It is not part of the log: daemons announce what they hold
//! periodically (and on upload), so a restarted tracker, or the standby after a failover, has
//! it back within one announce period. An entry not refreshed for [`SEEDER_TTL`] is no longer
//! offered to downloaders and is dropped by [`Swarm::expire`].
//!
//! Pure logic: the current time is passed in, so tests never sleep.

use p2p_proto::identity::Fingerprint;
use p2p_proto::tracker::{Announced, PeerInfo};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How long an entry stays offered after its daemon last announced it.
pub const SEEDER_TTL: Duration = Duration::from_secs(60);

/// How often the tracker drops expired entries.
pub const EXPIRE_INTERVAL: Duration = Duration::from_secs(10);

/// Most files one announcement may list; the rest is ignored.
pub const MAX_ANNOUNCED: usize = 100_000;

/// (group, file name).
type FileKey = (String, String);

/// One user's daemon holding one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEntry {
    /// Where its peer listener is reachable.
    pub addr: SocketAddr,
    /// The key its daemon connects with (downloaders accept only this key from it).
    pub key: Fingerprint,
    /// True when it holds every piece.
    pub complete: bool,
    pub last_seen: Instant,
}

impl PeerEntry {
    fn is_live(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_seen) < SEEDER_TTL
    }
}

/// Every file's holders, indexed both ways so a user's entries are found without a scan.
#[derive(Debug, Default)]
pub struct Swarm {
    files: HashMap<FileKey, HashMap<String, PeerEntry>>,
    by_user: HashMap<String, HashSet<FileKey>>,
}

impl Swarm {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `user` holds `group`/`name` at `addr`, with key `peer_key` (refreshing an
    /// earlier entry).
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        user: &str,
        group: &str,
        name: &str,
        addr: SocketAddr,
        peer_key: Fingerprint,
        complete: bool,
        now: Instant,
    ) {
        let key = (group.to_string(), name.to_string());
        self.files.entry(key.clone()).or_default().insert(
            user.to_string(),
            PeerEntry {
                addr,
                key: peer_key,
                complete,
                last_seen: now,
            },
        );
        self.by_user
            .entry(user.to_string())
            .or_default()
            .insert(key);
    }

    /// Replaces everything `user` offered before with `shares`, all reachable at `ip:port`.
    /// Files `user` offered before and does not list now are no longer offered.
    pub fn announce(
        &mut self,
        user: &str,
        ip: IpAddr,
        port: u16,
        peer_key: Fingerprint,
        shares: &[Announced],
        now: Instant,
    ) {
        let listed: HashSet<FileKey> = shares
            .iter()
            .map(|s| (s.group.clone(), s.name.clone()))
            .collect();
        let before = self.by_user.remove(user).unwrap_or_default();
        for key in before.difference(&listed) {
            self.unlink(user, key);
        }
        let addr = SocketAddr::new(ip, port);
        for share in shares {
            let (group, name) = (&share.group, &share.name);
            self.add(user, group, name, addr, peer_key, share.complete, now);
        }
    }

    /// `user` no longer offers `group`/`name`.
    pub fn remove(&mut self, user: &str, group: &str, name: &str) {
        let key = (group.to_string(), name.to_string());
        if let Some(keys) = self.by_user.get_mut(user) {
            keys.remove(&key);
            if keys.is_empty() {
                self.by_user.remove(user);
            }
        }
        self.unlink(user, &key);
    }

    /// `user` offers nothing any more (logged out).
    pub fn remove_user(&mut self, user: &str) {
        for key in self.by_user.remove(user).unwrap_or_default() {
            self.unlink(user, &key);
        }
    }

    /// `user` offers nothing in `group` any more (left it).
    pub fn remove_user_in_group(&mut self, user: &str, group: &str) {
        let Some(keys) = self.by_user.get_mut(user) else {
            return;
        };
        let gone: Vec<FileKey> = keys.iter().filter(|k| k.0 == group).cloned().collect();
        for key in &gone {
            keys.remove(key);
        }
        if keys.is_empty() {
            self.by_user.remove(user);
        }
        for key in &gone {
            self.unlink(user, key);
        }
    }

    /// Nobody offers anything in `group` any more (it was removed).
    pub fn remove_group(&mut self, group: &str) {
        let gone: Vec<FileKey> = self
            .files
            .keys()
            .filter(|(g, _)| g == group)
            .cloned()
            .collect();
        for key in gone {
            if let Some(holders) = self.files.remove(&key) {
                for user in holders.keys() {
                    if let Some(keys) = self.by_user.get_mut(user) {
                        keys.remove(&key);
                        if keys.is_empty() {
                            self.by_user.remove(user);
                        }
                    }
                }
            }
        }
    }

    /// The live holders of `group`/`name`: complete ones first, then by user id.
    pub fn peers(&self, group: &str, name: &str, now: Instant) -> Vec<PeerInfo> {
        let Some(holders) = self.files.get(&(group.to_string(), name.to_string())) else {
            return Vec::new();
        };
        let mut peers: Vec<PeerInfo> = holders
            .iter()
            .filter(|(_, entry)| entry.is_live(now))
            .map(|(user, entry)| PeerInfo {
                user: user.clone(),
                addr: entry.addr.to_string(),
                key: entry.key,
                complete: entry.complete,
                reach: None,
                addr6: None,
            })
            .collect();
        peers.sort_by(|a, b| {
            b.complete
                .cmp(&a.complete)
                .then_with(|| a.user.cmp(&b.user))
        });
        peers
    }

    /// How many live holders `group`/`name` has.
    pub fn count(&self, group: &str, name: &str, now: Instant) -> usize {
        self.files
            .get(&(group.to_string(), name.to_string()))
            .map_or(0, |holders| {
                holders.values().filter(|e| e.is_live(now)).count()
            })
    }

    /// Drops every entry not refreshed within [`SEEDER_TTL`]; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut dropped = 0;
        let by_user = &mut self.by_user;
        self.files.retain(|key, holders| {
            holders.retain(|user, entry| {
                if entry.is_live(now) {
                    return true;
                }
                dropped += 1;
                if let Some(keys) = by_user.get_mut(user) {
                    keys.remove(key);
                    if keys.is_empty() {
                        by_user.remove(user);
                    }
                }
                false
            });
            !holders.is_empty()
        });
        dropped
    }

    /// Removes `user`'s entry for `key` from the per-file map only.
    fn unlink(&mut self, user: &str, key: &FileKey) {
        if let Some(holders) = self.files.get_mut(key) {
            holders.remove(user);
            if holders.is_empty() {
                self.files.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn key() -> Fingerprint {
        Fingerprint::of_spki(b"a daemon's key")
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::new(IP, port)
    }

    fn share(group: &str, name: &str, complete: bool) -> Announced {
        Announced {
            group: group.into(),
            group_id: None,
            name: name.into(),
            sha1: "0".repeat(40),
            complete,
        }
    }

    fn users(peers: &[PeerInfo]) -> Vec<&str> {
        peers.iter().map(|p| p.user.as_str()).collect()
    }

    /// Checks the two indexes agree, so no entry is unreachable or dangling.
    fn assert_consistent(swarm: &Swarm) {
        let from_files: usize = swarm.files.values().map(HashMap::len).sum();
        let from_users: usize = swarm.by_user.values().map(HashSet::len).sum();
        assert_eq!(from_files, from_users);
        for (user, keys) in &swarm.by_user {
            assert!(!keys.is_empty());
            for key in keys {
                assert!(swarm.files[key].contains_key(user));
            }
        }
        assert!(swarm.files.values().all(|h| !h.is_empty()));
    }

    #[test]
    fn peers_are_listed_complete_first_with_their_address() {
        let t0 = Instant::now();
        let mut swarm = Swarm::new();
        swarm.add("carol", "g", "f", addr(3), key(), false, t0);
        swarm.add("bob", "g", "f", addr(2), key(), true, t0);
        swarm.add("alice", "g", "f", addr(1), key(), false, t0);
        let peers = swarm.peers("g", "f", t0);
        assert_eq!(users(&peers), ["bob", "alice", "carol"]);
        assert_eq!(peers[0].addr, "127.0.0.1:2");
        assert!(peers[0].complete);
        assert_eq!(swarm.count("g", "f", t0), 3);
        assert!(swarm.peers("g", "other", t0).is_empty());
        assert_eq!(swarm.count("other", "f", t0), 0);
        assert_consistent(&swarm);
    }

    #[test]
    fn announce_replaces_what_the_user_offered_before() {
        let t0 = Instant::now();
        let mut swarm = Swarm::new();
        swarm.add("alice", "g", "uploaded", addr(1), key(), true, t0);
        swarm.add("bob", "g", "a", addr(2), key(), true, t0);
        swarm.announce(
            "alice",
            IP,
            9,
            key(),
            &[share("g", "a", false), share("h", "b", true)],
            t0,
        );
        assert!(swarm.peers("g", "uploaded", t0).is_empty());
        let a = swarm.peers("g", "a", t0);
        assert_eq!(users(&a), ["bob", "alice"]);
        assert_eq!(a[1].addr, "127.0.0.1:9");
        assert!(!a[1].complete);
        assert_eq!(swarm.count("h", "b", t0), 1);

        // A later announcement changes the address and the completeness, and drops the rest.
        swarm.announce("alice", IP, 10, key(), &[share("g", "a", true)], t0);
        let a = swarm.peers("g", "a", t0);
        assert_eq!(users(&a), ["alice", "bob"]);
        assert_eq!(a[0].addr, "127.0.0.1:10");
        assert_eq!(swarm.count("h", "b", t0), 0);

        // An empty announcement withdraws everything.
        swarm.announce("alice", IP, 10, key(), &[], t0);
        assert_eq!(users(&swarm.peers("g", "a", t0)), ["bob"]);
        assert_consistent(&swarm);
        assert!(!swarm.by_user.contains_key("alice"));
    }

    #[test]
    fn entries_expire_after_the_ttl_and_announcing_refreshes_them() {
        let t0 = Instant::now();
        let mut swarm = Swarm::new();
        swarm.add("alice", "g", "f", addr(1), key(), true, t0);
        swarm.add(
            "bob",
            "g",
            "f",
            addr(2),
            key(),
            true,
            t0 + Duration::from_secs(30),
        );

        let almost = t0 + SEEDER_TTL - Duration::from_millis(1);
        assert_eq!(swarm.count("g", "f", almost), 2);
        assert_eq!(swarm.expire(almost), 0);

        // At exactly the TTL alice is stale: not offered, though still stored until expire.
        let at_ttl = t0 + SEEDER_TTL;
        assert_eq!(users(&swarm.peers("g", "f", at_ttl)), ["bob"]);
        assert_eq!(swarm.count("g", "f", at_ttl), 1);
        assert_eq!(swarm.expire(at_ttl), 1);
        assert_consistent(&swarm);
        assert!(!swarm.by_user.contains_key("alice"));

        // Bob re-announces before his TTL runs out and stays.
        let t80 = t0 + Duration::from_secs(80);
        swarm.announce("bob", IP, 2, key(), &[share("g", "f", true)], t80);
        assert_eq!(swarm.expire(t0 + Duration::from_secs(120)), 0);
        assert_eq!(swarm.count("g", "f", t80 + SEEDER_TTL), 0);
        assert_eq!(swarm.expire(t80 + SEEDER_TTL), 1);
        assert!(swarm.files.is_empty());
        assert!(swarm.by_user.is_empty());
    }

    #[test]
    fn stale_entries_are_not_offered_next_to_fresh_ones() {
        let t0 = Instant::now();
        let mut swarm = Swarm::new();
        swarm.add("old", "g", "f", addr(1), key(), true, t0);
        let later = t0 + Duration::from_secs(61);
        swarm.add("new", "g", "f", addr(2), key(), false, later);
        assert_eq!(users(&swarm.peers("g", "f", later)), ["new"]);
        assert_eq!(swarm.count("g", "f", later), 1);
    }

    #[test]
    fn removing_one_file_one_group_or_one_user() {
        let t0 = Instant::now();
        let mut swarm = Swarm::new();
        for user in ["alice", "bob"] {
            swarm.add(user, "g", "a", addr(1), key(), true, t0);
            swarm.add(user, "g", "b", addr(1), key(), true, t0);
            swarm.add(user, "h", "c", addr(1), key(), true, t0);
        }

        swarm.remove("alice", "g", "a");
        assert_eq!(users(&swarm.peers("g", "a", t0)), ["bob"]);
        assert_consistent(&swarm);

        swarm.remove_user_in_group("alice", "g");
        assert_eq!(users(&swarm.peers("g", "b", t0)), ["bob"]);
        assert_eq!(users(&swarm.peers("h", "c", t0)), ["alice", "bob"]);
        assert_consistent(&swarm);

        swarm.remove_user("bob");
        assert!(swarm.peers("g", "a", t0).is_empty());
        assert!(swarm.peers("g", "b", t0).is_empty());
        assert_eq!(users(&swarm.peers("h", "c", t0)), ["alice"]);
        assert_consistent(&swarm);

        // Removing what is not there is harmless.
        swarm.remove("nobody", "g", "a");
        swarm.remove_user("nobody");
        swarm.remove_user_in_group("alice", "zzz");
        assert_eq!(swarm.count("h", "c", t0), 1);
        assert_consistent(&swarm);
    }
}
