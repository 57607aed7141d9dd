//! Finds DPDK with pkg-config, generates bindings with bindgen, builds the C shim for DPDK's
//! `static inline` functions, and links DPDK statically (default) or dynamically (`dynamic`).

use std::env;
use std::path::PathBuf;

/// PMDs and buses linked into the static build. Each is linked whole (`+whole-archive`):
/// a driver registers itself from a constructor nothing else references, so without it the
/// linker drops the driver and EAL reports "no such device".
///
/// The NICs of cloud VMs, and what each needs besides the binary (deploy/README.md):
/// virtio (KVM clouds, qemu), ena (AWS), gve (GCP gVNIC), vmxnet3 (VMware), ixgbe/iavf/i40e/
/// ice (SR-IOV VFs): the NIC bound to vfio-pci or uio_pci_generic. netvsc (Azure synthetic
/// NIC): bound to uio_hv_generic on the VMBus. vdev_netvsc + failsafe (Azure's documented
/// pairing of the synthetic NIC with its accelerated VF), mlx5 (Azure accelerated
/// networking, ConnectX VFs): bifurcated, the kernel driver stays, and they need
/// libibverbs1 and ibverbs-providers (libmlx5) at run time. MANA (newer Azure sizes) has no
/// PMD in Debian's DPDK 22.11.
const STATIC_DRIVERS: &[&str] = &[
    "net_null",
    "net_ring",
    "net_pcap",
    "net_af_packet",
    "net_af_xdp",
    "net_tap",
    "net_memif",
    "net_vhost",
    "net_virtio",
    "net_ena",
    "net_gve",
    "net_vmxnet3",
    "net_netvsc",
    "net_vdev_netvsc",
    "net_failsafe",
    "net_mlx5",
    "net_ixgbe",
    "net_iavf",
    "net_i40e",
    "net_ice",
    "bus_vdev",
    "bus_pci",
    "bus_vmbus",
    "bus_auxiliary",
    "mempool_ring",
];

/// DPDK libraries the drivers and we use, each before the libraries it depends on.
const STATIC_LIBS: &[&str] = &[
    "common_mlx5",
    "common_iavf",
    "vhost",
    "gso",
    "security",
    "cryptodev",
    "dmadev",
    "timer",
    "hash",
    "rcu",
    "ethdev",
    "net",
    "meter",
    "mbuf",
    "mempool",
    "ring",
    "pci",
    "eal",
    "kvargs",
    "telemetry",
];

/// System libraries the static DPDK archives above need (shared).
const SYSTEM_LIBS: &[&str] = &[
    "pcap", "xdp", "bpf", "numa", "fdt", "bsd", "ibverbs", "mlx5", "atomic", "dl", "pthread", "m",
];

const APT_HINT: &str = "DPDK 22.11 development files were not found through pkg-config. \
     On Debian 12: apt-get install -y dpdk dpdk-dev libdpdk-dev clang libclang-dev pkg-config \
     libpcap-dev (or run `make deps`).";

fn main() {
    println!("cargo:rerun-if-changed=csrc/shim.c");
    println!("cargo:rerun-if-changed=csrc/shim.h");
    println!("cargo:rerun-if-changed=csrc/wrapper.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let dynamic = env::var_os("CARGO_FEATURE_DYNAMIC").is_some();
    let dpdk = match pkg_config::Config::new()
        .atleast_version("22.11")
        .cargo_metadata(dynamic)
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => panic!("\n\n{APT_HINT}\npkg-config said: {e}\n"),
    };

    // pkg-config's cflags: include paths plus `-include rte_config.h -march=corei7`. The shim
    // and bindgen must see the same ones as DPDK was built with.
    let cflags = pkg_config::get_variable("libdpdk", "cflags").ok();
    let mut clang_args: Vec<String> = dpdk
        .include_paths
        .iter()
        .map(|p| format!("-I{}", p.display()))
        .collect();
    clang_args.extend(["-include".into(), "rte_config.h".into()]);
    clang_args.push("-march=corei7".into());
    let _ = cflags;

    let mut shim = cc::Build::new();
    shim.file("csrc/shim.c")
        .opt_level(3)
        .flag("-include")
        .flag("rte_config.h")
        .flag("-march=corei7")
        .warnings(true);
    for p in &dpdk.include_paths {
        shim.include(p);
    }
    shim.compile("dpdk_shim");

    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bindings = bindgen::Builder::default()
        .header("csrc/wrapper.h")
        .clang_args(&clang_args)
        .clang_arg("-Icsrc")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function("rte_eal_.*")
        .allowlist_function("rte_eth_.*")
        .allowlist_function("rte_pktmbuf_.*")
        .allowlist_function("rte_mempool_.*")
        .allowlist_function("rte_ring_.*")
        .allowlist_function("rte_lcore_.*")
        .allowlist_function("rte_get_.*")
        .allowlist_function("rte_socket_.*")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_dev_.*")
        .allowlist_function("rte_exit")
        .allowlist_function("shim_.*")
        .allowlist_type("rte_mbuf")
        .allowlist_type("rte_eth_.*")
        .allowlist_var("RTE_ETH_.*")
        .allowlist_var("RTE_MBUF_.*")
        .allowlist_var("RTE_PKTMBUF_.*")
        .allowlist_var("RTE_MAX_.*")
        .allowlist_var("RTE_RING_.*")
        .allowlist_var("RING_F_.*")
        .allowlist_var("SOCKET_ID_ANY")
        .allowlist_var("RTE_ETHER_.*")
        .allowlist_var("E.*")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .generate()
        .unwrap_or_else(|e| panic!("\n\nbindgen failed on the DPDK headers: {e}\n{APT_HINT}\n"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs");

    if dynamic {
        // `libdpdk.pc` lists the libraries, not the drivers; the ring PMD's own API
        // (`rte_eth_from_rings`, used by `ring_port`) lives in its driver library.
        println!("cargo:rustc-link-lib=dylib=rte_net_ring");
    } else {
        link_static(&dpdk);
    }
}

fn link_static(dpdk: &pkg_config::Library) {
    // The static archives sit next to the shared libraries pkg-config found.
    for dir in &dpdk.link_paths {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    let libdir = pkg_config::get_variable("libdpdk", "libdir").unwrap_or_default();
    if !libdir.is_empty() {
        println!("cargo:rustc-link-search=native={libdir}");
    }
    for d in STATIC_DRIVERS {
        let name = format!("rte_{d}");
        check_archive(&libdir, &name);
        println!("cargo:rustc-link-lib=static:+whole-archive,-bundle={name}");
    }
    for l in STATIC_LIBS {
        let name = format!("rte_{l}");
        check_archive(&libdir, &name);
        println!("cargo:rustc-link-lib=static:-bundle={name}");
    }
    for l in SYSTEM_LIBS {
        println!("cargo:rustc-link-lib=dylib={l}");
    }
}

fn check_archive(libdir: &str, name: &str) {
    if libdir.is_empty() {
        return;
    }
    let path = PathBuf::from(libdir).join(format!("lib{name}.a"));
    if !path.exists() {
        panic!(
            "\n\nstatic DPDK archive {} is missing: install Debian's dpdk-dev/libdpdk-dev, or \
             build with `--features dynamic` to link the shared libraries.\n",
            path.display()
        );
    }
}
