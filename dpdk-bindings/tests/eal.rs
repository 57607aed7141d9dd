//! The safe layer against real DPDK: EAL without huge pages, net_ring and net_null ports.
//!
//! EAL initialises once per process, so this test binary has one test that walks through
//! everything in order.

use dpdk_sys::{attach, ring_port, Burst, Eal, Error, Mempool, Port, PortSettings, Ring};

fn settings(queues: u16) -> PortSettings {
    PortSettings {
        rx_queues: queues,
        tx_queues: queues,
        rx_descriptors: 256,
        tx_descriptors: 256,
        mtu: None,
        promiscuous: false,
    }
}

#[test]
fn eal_ports_mbufs_and_lcores() {
    let args = [
        "--no-huge",
        "-m",
        "256",
        "--lcores",
        "0@0,1@0",
        "--no-pci",
        "--no-telemetry",
        "--no-shconf",
        "--file-prefix",
        "dpdk-sys-test",
        "--log-level",
        "warning",
    ];
    let eal = Eal::init(&args).expect("EAL init with --no-huge");
    assert_eq!(Eal::init(&args).unwrap_err(), Error::AlreadyInitialised);
    assert_eq!(Eal::current_lcore(), Some(eal.main_lcore()));
    let workers = eal.worker_lcores();
    assert_eq!(workers.len(), 1, "one worker lcore");

    let pool = Mempool::new(&eal, "test_pool", 4095, 64, 2176, None).expect("pool");
    let before = pool.available();

    // An owned mbuf: write bytes, read them back, drop returns it to the pool.
    {
        let mut m = pool.alloc().expect("mbuf");
        assert_eq!(m.data().len(), 0);
        m.append(60).expect("room").copy_from_slice(&[0xab; 60]);
        assert_eq!(m.data(), &[0xab; 60][..]);
        assert!(m.set_len(14));
        assert_eq!(m.pkt_len(), 14);
        assert!(m.is_contiguous());
        assert_eq!(pool.available(), before - 1);
    }
    assert_eq!(pool.available(), before);

    // A bad device is refused with DPDK's message, naming it.
    let err = attach(&eal, "net_nosuchdriver0").unwrap_err();
    assert!(err.to_string().contains("net_nosuchdriver0"), "{err}");

    // net_ring: what is sent on a queue comes back on the same queue.
    let ring_id = attach(&eal, "net_ring0").expect("net_ring0");
    let mut ring = Port::configure(&eal, ring_id, &settings(1), &pool).expect("configure");
    assert_eq!(ring.info().driver, "net_ring");
    // Too many queues is refused with the device's limit.
    let null_id = attach(&eal, "net_null0").expect("net_null0");
    let err = Port::configure(&eal, null_id, &settings(5000), &pool).unwrap_err();
    assert!(err.to_string().contains("rx queues"), "{err}");
    let mut null = Port::configure(&eal, null_id, &settings(1), &pool).expect("configure null");
    ring.start().expect("start ring");
    null.start().expect("start null");
    assert!(ring.link().expect("link").up);

    {
        let (mut rxq, mut txq) = ring.queues().expect("first take");
        assert!(ring.queues().is_none(), "queues are handed out once");
        let mut out: Burst<'_, 32> = Burst::new();
        for i in 0..32u8 {
            let mut m = pool.alloc().expect("mbuf");
            m.append(64).expect("room").fill(i);
            out.push(m).expect("room in burst");
        }
        assert!(out.is_full());
        let sent = txq[0].tx_burst(&mut out);
        assert_eq!(sent, 32);
        assert!(out.is_empty());
        let mut inb: Burst<'_, 32> = Burst::new();
        let got = rxq[0].rx_burst(&mut inb, 32);
        assert_eq!(got, 32);
        for (i, m) in inb.as_slice().iter().enumerate() {
            assert_eq!(m.data(), &[i as u8; 64][..], "order and content kept");
        }
        assert_eq!(inb.free_all(), 32);
    }
    let stats = ring.stats().expect("stats");
    assert_eq!((stats.tx_packets, stats.rx_packets), (32, 32));
    assert!(!ring.xstats().expect("xstats").is_empty());

    // A closure on the worker lcore, borrowing from this stack frame, polling net_null.
    let received = eal.scope(|s| {
        let (mut rxq, _tx) = null.queues().expect("first take");
        let mut rx = rxq.pop().expect("one rx queue");
        let w = s
            .spawn(workers[0], move || {
                let mut b: Burst<'_, 32> = Burst::new();
                let mut total = 0i32;
                while total < 10_000 {
                    total += rx.rx_burst(&mut b, 32) as i32;
                    b.free_all();
                }
                total
            })
            .expect("launch");
        assert_eq!(w.lcore(), workers[0]);
        w.join().expect("join")
    });
    assert!(received >= 10_000);

    // A panicking worker is reported, not propagated into C.
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = eal.scope(|s| {
        s.spawn(workers[0], || panic!("boom"))
            .expect("launch")
            .join()
    });
    std::panic::set_hook(quiet);
    assert_eq!(r, Err(Error::WorkerPanicked(workers[0].0)));
    // Launching on the main lcore is refused.
    eal.scope(|s| assert!(s.spawn(eal.main_lcore(), || 0).is_err()));

    // A port made of rings we own: what we put in its rx ring is received, what it sends
    // lands in its tx ring.
    {
        let rx = Ring::new(&eal, "t_rx", 1024).expect("ring");
        let tx = Ring::new(&eal, "t_tx", 1024).expect("ring");
        let id = ring_port(&eal, "t_ringport", &[&rx], &[&tx]).expect("ring port");
        let mut p = Port::configure(&eal, id, &settings(1), &pool).expect("configure");
        p.start().expect("start");
        {
            let (mut rxq, mut txq) = p.queues().expect("queues");
            let mut b: Burst<'_, 32> = Burst::new();
            assert_eq!(b.alloc_from(&pool, 8), 8);
            for m in b.as_mut_slice() {
                m.append(60).expect("room").fill(7);
            }
            assert_eq!(rx.enqueue(&mut b), 8);
            assert_eq!(rx.count(), 8);
            assert_eq!(rxq[0].rx_burst(&mut b, 32), 8);
            assert!(b.as_slice().iter().all(|m| m.data() == [7u8; 60]));
            assert_eq!(txq[0].tx_burst(&mut b), 8);
            assert_eq!(tx.count(), 8);
            assert_eq!(tx.dequeue(&mut b, 32), 8);
            b.free_all();
        }
        drop(p);
    }

    drop(ring);
    drop(null);
    assert_eq!(pool.available(), before, "every mbuf went back");
    let runtime = eal.runtime_dir().expect("runtime dir");
    drop(eal);
    assert!(!runtime.exists(), "{} left behind", runtime.display());
}
