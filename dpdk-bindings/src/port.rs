//! Ethernet ports: attach, configure, start, and burst rx/tx on queues owned by one lcore.

use crate::eal::Eal;
use crate::error::{check, Error, Result};
use crate::ffi;
use crate::mbuf::{Burst, Mbuf, Mempool};
use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};

/// A DPDK port id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortId(pub u16);

/// A queue index within a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId(pub u16);

impl std::fmt::Display for PortId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

// RSS hash types of IPv4 (rte_ethdev.h; function-like macros bindgen cannot evaluate).
const RSS_IPV4: u64 = 1 << 2;
const RSS_FRAG_IPV4: u64 = 1 << 3;
const RSS_NONFRAG_IPV4_TCP: u64 = 1 << 4;
const RSS_NONFRAG_IPV4_UDP: u64 = 1 << 5;
const RSS_NONFRAG_IPV4_OTHER: u64 = 1 << 7;
const RSS_WANTED: u64 =
    RSS_IPV4 | RSS_FRAG_IPV4 | RSS_NONFRAG_IPV4_TCP | RSS_NONFRAG_IPV4_UDP | RSS_NONFRAG_IPV4_OTHER;
const TX_OFFLOAD_MBUF_FAST_FREE: u64 = 1 << 16;

/// A Toeplitz key made of one repeated 16-bit pattern hashes (a, b) and (b, a) alike, so
/// both directions of a flow land on the same queue (Woo and Park, "Scalable TCP session
/// monitoring with symmetric receive-side scaling").
const SYMMETRIC_RSS_KEY: [u8; 40] = {
    let mut k = [0u8; 40];
    let mut i = 0;
    while i < 40 {
        k[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    k
};

/// What a port is asked to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSettings {
    /// Rx queues (each polled by one lcore).
    pub rx_queues: u16,
    /// Tx queues (each used by one lcore).
    pub tx_queues: u16,
    /// Descriptors per rx queue (adjusted to the device's limits).
    pub rx_descriptors: u16,
    /// Descriptors per tx queue (adjusted to the device's limits).
    pub tx_descriptors: u16,
    /// MTU to set, or the device's default.
    pub mtu: Option<u16>,
    /// Receive every frame regardless of destination MAC.
    pub promiscuous: bool,
}

/// What the device says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// The PMD's name, e.g. `net_af_packet`.
    pub driver: String,
    /// The device name, e.g. `net_af_packet0` or a PCI address.
    pub name: String,
    /// Queue limits.
    pub max_rx_queues: u16,
    /// Queue limits.
    pub max_tx_queues: u16,
    /// RSS hash types it supports (0: no RSS).
    pub rss_offloads: u64,
    /// Whether RSS was turned on at configure time.
    pub rss_enabled: bool,
    /// NUMA socket, if known.
    pub socket: Option<u32>,
}

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Up or down.
    pub up: bool,
    /// Speed in Mbit/s (0 when unknown).
    pub speed_mbps: u32,
}

/// Basic counters kept by the driver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets the NIC dropped because rx queues were full.
    pub rx_missed: u64,
    /// Erroneous received packets.
    pub rx_errors: u64,
    /// Failed transmissions.
    pub tx_errors: u64,
    /// Rx mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// Probes a device from its devargs (`net_ring0`, `net_af_packet0,iface=eth1`, a PCI address)
/// and returns its port id. The port name is the part before the first comma.
pub fn attach(_eal: &Eal, devargs: &str) -> Result<PortId> {
    let c = CString::new(devargs)
        .map_err(|_| Error::InvalidArgument(format!("device {devargs:?} contains NUL")))?;
    let name = devargs.split(',').next().unwrap_or(devargs).trim();
    // An already-probed device (from the EAL command line) is found by name first.
    if let Ok(id) = port_by_name(name) {
        return Ok(id);
    }
    // SAFETY: EAL is initialised; DPDK copies the string.
    let rc = unsafe { ffi::rte_dev_probe(c.as_ptr()) };
    check(|| format!("probing device {devargs:?}"), rc)?;
    port_by_name(name)
}

fn port_by_name(name: &str) -> Result<PortId> {
    let c = CString::new(name)
        .map_err(|_| Error::InvalidArgument(format!("port name {name:?} contains NUL")))?;
    let mut id = 0u16;
    // SAFETY: valid C string, valid out pointer.
    let rc = unsafe { ffi::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
    check(|| format!("finding port {name:?}"), rc)?;
    Ok(PortId(id))
}

/// A configured Ethernet port. Dropping it stops and closes the device.
#[derive(Debug)]
pub struct Port<'eal> {
    id: PortId,
    info: PortInfo,
    settings: PortSettings,
    started: bool,
    queues_taken: AtomicBool,
    _eal: PhantomData<&'eal Eal>,
}

impl<'eal> Port<'eal> {
    /// Configures port `id`: queues, RSS when it has several rx queues and the device hashes,
    /// MTU, fast mbuf free when offered, and rx queues filled from `pool`.
    pub fn configure(
        _eal: &'eal Eal,
        id: PortId,
        settings: &PortSettings,
        pool: &Mempool<'eal>,
    ) -> Result<Self> {
        let p = id.0;
        let mut dev = ffi::rte_eth_dev_info::default();
        // SAFETY: valid out pointer; an invalid port id is reported as an error.
        let rc = unsafe { ffi::rte_eth_dev_info_get(p, &mut dev) };
        check(|| format!("rte_eth_dev_info_get(port {p})"), rc)?;
        let driver = cstr_or_empty(dev.driver_name);
        let name = port_name(id);
        if settings.rx_queues == 0 || settings.rx_queues > dev.max_rx_queues {
            return Err(Error::InvalidArgument(format!(
                "port {p} ({name}): {} rx queues asked, the device supports 1 to {}",
                settings.rx_queues, dev.max_rx_queues
            )));
        }
        if settings.tx_queues == 0 || settings.tx_queues > dev.max_tx_queues {
            return Err(Error::InvalidArgument(format!(
                "port {p} ({name}): {} tx queues asked, the device supports 1 to {}",
                settings.tx_queues, dev.max_tx_queues
            )));
        }

        let mut conf = ffi::rte_eth_conf::default();
        let rss_hf = RSS_WANTED & dev.flow_type_rss_offloads;
        let mut key = SYMMETRIC_RSS_KEY;
        let rss_enabled = settings.rx_queues > 1 && rss_hf != 0;
        if rss_enabled {
            conf.rxmode.mq_mode = ffi::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            if dev.hash_key_size as usize == key.len() {
                conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
                conf.rx_adv_conf.rss_conf.rss_key_len = key.len() as u8;
            }
        }
        if let Some(mtu) = settings.mtu {
            conf.rxmode.mtu = u32::from(mtu);
        }
        if dev.tx_offload_capa & TX_OFFLOAD_MBUF_FAST_FREE != 0 {
            conf.txmode.offloads |= TX_OFFLOAD_MBUF_FAST_FREE;
        }
        // SAFETY: valid port (info_get succeeded) and conf; DPDK copies the RSS key.
        let rc =
            unsafe { ffi::rte_eth_dev_configure(p, settings.rx_queues, settings.tx_queues, &conf) };
        check(|| format!("rte_eth_dev_configure(port {p} {name})"), rc)?;

        let (mut rxd, mut txd) = (settings.rx_descriptors, settings.tx_descriptors);
        // SAFETY: valid port and out pointers.
        let rc = unsafe { ffi::rte_eth_dev_adjust_nb_rx_tx_desc(p, &mut rxd, &mut txd) };
        check(|| format!("rte_eth_dev_adjust_nb_rx_tx_desc(port {p})"), rc)?;

        // SAFETY: valid port.
        let socket = unsafe { ffi::rte_eth_dev_socket_id(p) };
        let socket_arg = if socket < 0 {
            ffi::SOCKET_ID_ANY as u32
        } else {
            socket as u32
        };
        let mut txconf = dev.default_txconf;
        txconf.offloads = conf.txmode.offloads;
        for q in 0..settings.rx_queues {
            // SAFETY: configured port, queue in range, pool valid for 'eal; NULL rxconf
            // means the driver's defaults.
            let rc = unsafe {
                ffi::rte_eth_rx_queue_setup(p, q, rxd, socket_arg, std::ptr::null(), pool.as_ptr())
            };
            check(
                || format!("rte_eth_rx_queue_setup(port {p}, queue {q})"),
                rc,
            )?;
        }
        for q in 0..settings.tx_queues {
            // SAFETY: configured port, queue in range, valid txconf.
            let rc = unsafe { ffi::rte_eth_tx_queue_setup(p, q, txd, socket_arg, &txconf) };
            check(
                || format!("rte_eth_tx_queue_setup(port {p}, queue {q})"),
                rc,
            )?;
        }
        if settings.promiscuous {
            // SAFETY: configured port.
            let rc = unsafe { ffi::rte_eth_promiscuous_enable(p) };
            check(|| format!("rte_eth_promiscuous_enable(port {p})"), rc)?;
        }
        Ok(Port {
            id,
            info: PortInfo {
                driver,
                name,
                max_rx_queues: dev.max_rx_queues,
                max_tx_queues: dev.max_tx_queues,
                rss_offloads: dev.flow_type_rss_offloads,
                rss_enabled,
                socket: (socket >= 0).then_some(socket as u32),
            },
            settings: settings.clone(),
            started: false,
            queues_taken: AtomicBool::new(false),
            _eal: PhantomData,
        })
    }

    /// The port id.
    pub fn id(&self) -> PortId {
        self.id
    }

    /// What the device reported at configure time.
    pub fn info(&self) -> &PortInfo {
        &self.info
    }

    /// Starts rx and tx.
    pub fn start(&mut self) -> Result<()> {
        // SAFETY: configured port.
        let rc = unsafe { ffi::rte_eth_dev_start(self.id.0) };
        check(|| format!("rte_eth_dev_start(port {})", self.id), rc)?;
        self.started = true;
        Ok(())
    }

    /// Stops rx and tx (queues keep their mbufs until close).
    pub fn stop(&mut self) -> Result<()> {
        if !self.started {
            return Ok(());
        }
        self.started = false;
        // SAFETY: started port; no queue handle can exist (they borrow `self` mutably).
        let rc = unsafe { ffi::rte_eth_dev_stop(self.id.0) };
        check(|| format!("rte_eth_dev_stop(port {})", self.id), rc).map(|_| ())
    }

    /// The port's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        let mut a = ffi::rte_ether_addr::default();
        // SAFETY: valid port and out pointer.
        unsafe { ffi::rte_eth_macaddr_get(self.id.0, &mut a) };
        a.addr_bytes
    }

    /// Link state now, without waiting.
    pub fn link(&self) -> Result<Link> {
        let mut l = ffi::rte_eth_link::default();
        // SAFETY: valid port and out pointer.
        let rc = unsafe { ffi::rte_eth_link_get_nowait(self.id.0, &mut l) };
        check(|| format!("rte_eth_link_get_nowait(port {})", self.id), rc)?;
        Ok(Link {
            up: l.link_status() != 0,
            speed_mbps: if l.link_speed == u32::MAX {
                0
            } else {
                l.link_speed
            },
        })
    }

    /// The driver's basic counters. Safe to call from any thread while lcores run.
    pub fn stats(&self) -> Result<PortStats> {
        stats(self.id)
    }

    /// The driver's extended counters, by name.
    pub fn xstats(&self) -> Result<Vec<(String, u64)>> {
        let p = self.id.0;
        // SAFETY: NULL with size 0 asks for the count.
        let n = unsafe { ffi::rte_eth_xstats_get_names(p, std::ptr::null_mut(), 0) };
        let n = check(|| format!("rte_eth_xstats_get_names(port {p})"), n)? as usize;
        let mut names = vec![ffi::rte_eth_xstat_name::default(); n];
        let mut values = vec![ffi::rte_eth_xstat::default(); n];
        // SAFETY: arrays of n entries.
        let got = unsafe { ffi::rte_eth_xstats_get_names(p, names.as_mut_ptr(), n as u32) };
        let got = check(|| format!("rte_eth_xstats_get_names(port {p})"), got)? as usize;
        // SAFETY: arrays of n entries.
        let vals = unsafe { ffi::rte_eth_xstats_get(p, values.as_mut_ptr(), n as u32) };
        let vals = check(|| format!("rte_eth_xstats_get(port {p})"), vals)? as usize;
        let k = got.min(vals).min(n);
        Ok(values[..k]
            .iter()
            .filter_map(|v| {
                let name = names.get(v.id as usize)?;
                // SAFETY: DPDK NUL-terminates names within the 64-byte array.
                let s = unsafe { CStr::from_ptr(name.name.as_ptr()) };
                Some((s.to_string_lossy().into_owned(), v.value))
            })
            .collect())
    }

    /// Hands out the rx and tx queues, once per port (later calls get `None`). Each handle
    /// is used by one lcore at a time (DPDK queues are not thread-safe); borrowing the port
    /// keeps it from being stopped or closed under them.
    #[allow(clippy::type_complexity)]
    pub fn queues(&self) -> Option<(Vec<RxQueue<'_, 'eal>>, Vec<TxQueue<'_, 'eal>>)> {
        if self.queues_taken.swap(true, Ordering::SeqCst) {
            return None;
        }
        let rx = (0..self.settings.rx_queues)
            .map(|q| RxQueue {
                port: self.id,
                queue: QueueId(q),
                _port: PhantomData,
            })
            .collect();
        let tx = (0..self.settings.tx_queues)
            .map(|q| TxQueue {
                port: self.id,
                queue: QueueId(q),
                _port: PhantomData,
            })
            .collect();
        Some((rx, tx))
    }
}

/// Counters of a port by id (for readers that do not hold the `Port`).
pub fn stats(id: PortId) -> Result<PortStats> {
    let mut s = ffi::rte_eth_stats::default();
    // SAFETY: valid out pointer; an invalid id is reported as an error.
    let rc = unsafe { ffi::rte_eth_stats_get(id.0, &mut s) };
    check(|| format!("rte_eth_stats_get(port {id})"), rc)?;
    Ok(PortStats {
        rx_packets: s.ipackets,
        tx_packets: s.opackets,
        rx_bytes: s.ibytes,
        tx_bytes: s.obytes,
        rx_missed: s.imissed,
        rx_errors: s.ierrors,
        tx_errors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
    })
}

impl Drop for Port<'_> {
    fn drop(&mut self) {
        let _ = self.stop();
        // SAFETY: the port is stopped and no queue handle exists (they borrow the port).
        unsafe {
            ffi::rte_eth_dev_close(self.id.0);
        }
    }
}

fn port_name(id: PortId) -> String {
    let mut buf = [0 as std::os::raw::c_char; 64];
    // SAFETY: buffer of RTE_ETH_NAME_MAX_LEN (64) bytes.
    let rc = unsafe { ffi::rte_eth_dev_get_name_by_port(id.0, buf.as_mut_ptr()) };
    if rc < 0 {
        return format!("port{}", id.0);
    }
    // SAFETY: NUL-terminated by DPDK inside the buffer.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn cstr_or_empty(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: DPDK gives static NUL-terminated driver names.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// An rx queue: one lcore polls it.
#[derive(Debug)]
pub struct RxQueue<'p, 'eal> {
    port: PortId,
    queue: QueueId,
    _port: PhantomData<(&'p Port<'eal>, *const ())>,
}

/// A tx queue: one lcore sends on it.
#[derive(Debug)]
pub struct TxQueue<'p, 'eal> {
    port: PortId,
    queue: QueueId,
    _port: PhantomData<(&'p Port<'eal>, *const ())>,
}

// SAFETY: a queue handle may move to the lcore that will use it; it is not `Sync` (the
// raw-pointer marker) and not `Clone`, so exactly one thread uses a queue at a time.
unsafe impl Send for RxQueue<'_, '_> {}
// SAFETY: as for `RxQueue`.
unsafe impl Send for TxQueue<'_, '_> {}

impl<'eal> RxQueue<'_, 'eal> {
    /// The port it belongs to.
    pub fn port(&self) -> PortId {
        self.port
    }

    /// The queue index.
    pub fn queue(&self) -> QueueId {
        self.queue
    }

    /// Receives up to `max` packets (bounded by the burst's free room) into the burst;
    /// returns how many arrived.
    #[inline]
    pub fn rx_burst<const N: usize>(&mut self, burst: &mut Burst<'eal, N>, max: usize) -> usize {
        let (ptr, room) = burst.spare_raw();
        let room = room.min(max).min(usize::from(u16::MAX)) as u16;
        if room == 0 {
            return 0;
        }
        // SAFETY: `ptr` has `room` writable slots; we are the only user of this queue; DPDK
        // writes at most `room` owned mbuf pointers, which `commit` then owns.
        let n = unsafe { ffi::shim_rte_eth_rx_burst(self.port.0, self.queue.0, ptr, room) };
        burst.commit(usize::from(n));
        usize::from(n)
    }
}

impl<'eal> TxQueue<'_, 'eal> {
    /// The port it belongs to.
    pub fn port(&self) -> PortId {
        self.port
    }

    /// The queue index.
    pub fn queue(&self) -> QueueId {
        self.queue
    }

    /// Sends what the burst holds; the sent mbufs leave it, the rest stay (front first) for
    /// the caller to retry or free. Returns how many were sent.
    #[inline]
    pub fn tx_burst<const N: usize>(&mut self, burst: &mut Burst<'eal, N>) -> usize {
        let n = burst.len().min(usize::from(u16::MAX)) as u16;
        if n == 0 {
            return 0;
        }
        // SAFETY: the first n slots hold owned mbufs; we are the only user of this queue;
        // DPDK takes ownership of the first `sent` of them.
        let sent =
            unsafe { ffi::shim_rte_eth_tx_burst(self.port.0, self.queue.0, burst.raw_ptr(), n) };
        burst.consume_front(usize::from(sent));
        usize::from(sent)
    }

    /// Sends one mbuf; gives it back when the queue is full.
    pub fn tx_one(&mut self, m: Mbuf<'eal>) -> std::result::Result<(), Mbuf<'eal>> {
        let mut b: Burst<'eal, 1> = Burst::new();
        let _ = b.push(m);
        if self.tx_burst(&mut b) == 1 {
            Ok(())
        } else {
            Err(b.pop().expect("unsent mbuf stays in the burst"))
        }
    }
}
