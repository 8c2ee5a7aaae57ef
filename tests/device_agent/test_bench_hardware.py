"""CPU detection and peak compute, from /proc/cpuinfo recordings of three real machines."""

from __future__ import annotations

import platform

import pytest

from device_agent.bench.hardware import CpuInfo, Peak, detect_cpu, peak_from_profile

XEON_CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 106
model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
stepping\t: 6
cpu MHz\t\t: 2899.998
cache size\t: 55296 KB
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr \
sse sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid \
aperfmperf tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt \
tsc_deadline_timer aes xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch invpcid_single \
ssbd ibrs ibpb stibp ibrs_enhanced fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid avx512f \
avx512dq rdseed adx smap avx512ifma clflushopt clwb avx512cd sha_ni avx512bw avx512vl xsaveopt \
xsavec xgetbv1 xsaves wbnoinvd ida arat avx512vbmi pku ospke avx512_vbmi2 gfni vaes vpclmulqdq \
avx512_vnni avx512_bitalg tme avx512_vpopcntdq rdpid md_clear flush_l1d arch_capabilities
bogomips\t: 5799.99

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
cpu MHz\t\t: 2899.998
flags\t\t: fpu sse sse2 lm fma avx avx2 avx512f avx512_vnni
"""

PI4_CPUINFO = "".join(
    f"""processor\t: {i}
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

"""
    for i in range(4)
) + (
    "Hardware\t: BCM2835\nRevision\t: c03114\nSerial\t\t: 10000000a1b2c3d4\n"
    "Model\t\t: Raspberry Pi 4 Model B Rev 1.4\n"
)

PI5_CPUINFO = "".join(
    f"""processor\t: {i}
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x4
CPU part\t: 0xd0b
CPU revision\t: 1

"""
    for i in range(4)
) + "Revision\t: d04170\nSerial\t\t: 0123456789abcdef\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n"


def _peak(cpu: CpuInfo, precision: str, threads: int | None = None) -> Peak:
    peak = cpu.peak_gops(precision, threads)
    assert peak is not None, f"no {precision} peak for {cpu}"
    assert peak.precision == precision
    return peak


def _gops(cpu: CpuInfo, precision: str, threads: int | None = None) -> float:
    return _peak(cpu, precision, threads).gops


def test_xeon_with_avx512_vnni() -> None:
    cpu = detect_cpu(XEON_CPUINFO, machine="x86_64")
    assert cpu.model == "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"
    assert cpu.cores == 2  # two "processor" lines
    assert cpu.max_ghz == pytest.approx(2.899998)  # no sysfs clock given: "cpu MHz"
    assert {"avx512f", "avx512_vnni", "avx2", "fma"} <= set(cpu.features)
    assert "avx512_fp16" not in cpu.features

    cpu = detect_cpu(XEON_CPUINFO, machine="x86_64", max_khz=3_500_000, cores=8)
    fp32 = cpu.peak_gops("fp32")
    assert fp32 is not None
    assert fp32.gops == pytest.approx(64 * 8 * 3.5)
    assert fp32.precision == "fp32"
    assert fp32.source == "detected: 8 cores x 3.50 GHz x 64 FP32 ops/cycle (AVX-512 FMA, 2 units assumed)"
    assert _gops(cpu, "fp16") == pytest.approx(64 * 8 * 3.5)  # no avx512_fp16
    assert _gops(cpu, "int8") == pytest.approx(256 * 8 * 3.5)
    assert _gops(cpu, "int8", threads=2) == pytest.approx(256 * 2 * 3.5)
    assert _gops(cpu, "fp32", threads=64) == pytest.approx(64 * 8 * 3.5)  # capped at the cores


def test_x86_feature_tiers() -> None:
    def per_core(flags: str, precision: str) -> float:
        cpu = detect_cpu(f"processor\t: 0\nflags\t\t: {flags}\n", machine="x86_64", max_khz=1_000_000)
        return _gops(cpu, precision)

    assert per_core("sse sse2 avx avx2 fma", "fp32") == pytest.approx(32)
    assert per_core("sse sse2 avx avx2 fma", "int8") == pytest.approx(64)
    assert per_core("sse sse2 avx avx2 fma avx_vnni", "int8") == pytest.approx(128)
    assert per_core("sse sse2 sse4_2", "fp32") == pytest.approx(8)
    assert per_core("sse sse2 sse4_2", "int8") == pytest.approx(16)
    assert per_core("avx2 fma avx512f avx512_fp16", "fp16") == pytest.approx(128)
    assert per_core("avx2 fma avx512f amx_int8", "int8") == pytest.approx(64)  # AMX ignored, no VNNI


def test_raspberry_pi_4() -> None:
    cpu = detect_cpu(PI4_CPUINFO, machine="aarch64", max_khz=1_800_000)
    assert cpu.model == "Cortex-A72 (Raspberry Pi 4 Model B Rev 1.4)"
    assert cpu.cores == 4
    assert cpu.max_ghz == pytest.approx(1.8)
    assert cpu.features == ("asimd",)
    assert _gops(cpu, "fp32") == pytest.approx(16 * 4 * 1.8)
    assert _gops(cpu, "fp16") == pytest.approx(16 * 4 * 1.8)  # no fphp
    assert _gops(cpu, "int8") == pytest.approx(32 * 4 * 1.8)  # no sdot
    assert _peak(cpu, "int8", threads=1).source == (
        "detected: 1 core x 1.80 GHz x 32 INT8 ops/cycle (NEON multiply-accumulate, 2 pipes assumed)"
    )


def test_raspberry_pi_5() -> None:
    cpu = detect_cpu(PI5_CPUINFO, max_khz=2_400_000)
    assert cpu.arch == "aarch64"  # from "CPU architecture: 8"
    assert cpu.model == "Cortex-A76 (Raspberry Pi 5 Model B Rev 1.0)"
    assert cpu.features == ("asimd", "fphp", "asimdhp", "asimddp")
    assert _gops(cpu, "fp32") == pytest.approx(16 * 4 * 2.4)
    assert _gops(cpu, "fp16") == pytest.approx(32 * 4 * 2.4)
    assert _gops(cpu, "int8") == pytest.approx(64 * 4 * 2.4)
    i8mm = detect_cpu(PI5_CPUINFO.replace("asimddp", "asimddp i8mm"), max_khz=2_400_000)
    assert _gops(i8mm, "int8") == pytest.approx(128 * 4 * 2.4)


def test_arm_part_names() -> None:
    parts = [("0xd03", "Cortex-A53"), ("0xd05", "Cortex-A55"), ("0xd42", "Cortex-A78AE"), ("0xd44", "Cortex-X1")]
    for part, name in parts:
        text = f"processor\t: 0\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU part\t: {part}\n"
        assert detect_cpu(text).model == name
    big_little = "CPU implementer\t: 0x41\nCPU part\t: 0xd05\n\nCPU implementer\t: 0x41\nCPU part\t: 0xd0b\n"
    assert detect_cpu(big_little, machine="aarch64").model == "Cortex-A55 + Cortex-A76"
    assert detect_cpu("processor\t: 0\nCPU implementer\t: 0x51\nCPU part\t: 0xd08\n").model == "unknown"


def test_no_peak_without_clock_or_table_entry() -> None:
    assert detect_cpu(PI4_CPUINFO, machine="aarch64").peak_gops("fp32") is None  # no clock known
    armv7_text = "processor\t: 0\nFeatures\t: half thumb vfp neon vfpv4\nCPU architecture: 7\n"
    armv7 = detect_cpu(armv7_text, max_khz=1_000_000)
    assert armv7.arch == "armv7l"
    assert armv7.peak_gops("fp32") is None
    with pytest.raises(ValueError, match="'fp64' is not one of fp32, fp16, int8"):
        armv7.peak_gops("fp64")


def test_peak_from_profile() -> None:
    profile = {"fp32": 100.0, "int8": 400.0}
    peak = peak_from_profile(profile, "int8", target="rpi5")
    assert peak is not None and peak.gops == pytest.approx(400.0) and peak.source == "target profile rpi5"
    peak = peak_from_profile(profile, "int8", target="rpi5", threads=2, cores=4)
    assert peak is not None and peak.gops == pytest.approx(200.0)
    assert peak.source == "target profile rpi5, scaled to 2 of 4 cores"
    capped = peak_from_profile(profile, "fp32", target="rpi5", threads=8, cores=4)
    assert capped is not None and capped.gops == pytest.approx(100.0)
    fp16 = peak_from_profile(profile, "fp16", target="rpi5")
    assert fp16 is not None and fp16.gops == pytest.approx(100.0) and fp16.precision == "fp16"
    assert "fp32 figure" in fp16.source
    assert peak_from_profile({"fp32": 100.0}, "int8", target="rpi5") is None
    assert peak_from_profile({}, "fp32", target="rpi5") is None


def test_this_machine() -> None:
    cpu = detect_cpu()
    assert isinstance(cpu, CpuInfo)
    assert cpu.cores >= 1
    assert cpu.arch == platform.machine()
    if cpu.arch.lower() in ("x86_64", "amd64"):
        assert cpu.features, "an x86-64 CPU reports at least SSE4.2/AVX flags"
        assert cpu.model != "unknown"
    json = cpu.to_json()
    assert set(json) == {"model", "arch", "cores", "max_ghz", "features", "peak_gops"}
    assert set(json["peak_gops"]) == {"fp32", "fp16", "int8"}


def test_mixed_peak_weighs_each_precision_by_its_macs() -> None:
    """An INT8 model with float layers is set against the peak of the mix it computes, not the INT8 peak."""
    from device_agent.bench.hardware import mixed_peak

    int8, fp32 = Peak(1000.0, "int8", "detected int8"), Peak(250.0, "fp32", "detected fp32")
    peak = mixed_peak({"int8": int8, "fp32": fp32}, {"int8": 750, "fp32": 250})
    assert peak is not None
    # at peak: 1500 ops / 1000 GOP/s + 500 ops / 250 GOP/s = 3.5 ns for 2000 ops
    assert peak.gops == pytest.approx(2000 / 3.5)
    assert peak.precision == "int8+fp32"
    assert "75.0% of MACs int8 at 1000 GOP/s" in peak.source and "25.0% of MACs fp32 at 250 GOP/s" in peak.source
    assert mixed_peak({"int8": int8}, {"int8": 10, "fp32": 0}) == int8  # one precision: its own peak
    assert mixed_peak({"int8": int8}, {"int8": 10, "fp32": 5}) is None  # a precision without a peak
