// Fast self-checking Verilator harness of one DRE unit (sim/fast/__init__.py builds and runs it).
//
// The unit's streams are bound in the generated header fast_unit.h (one add_in/add_out per
// amaranth.lib.stream port, add_scalar/add_read for the state checked at the end). Golden
// stimulus and expected beats come from files written by sim.fast: DIR/in_<stream>.hex and
// DIR/out_<stream>.hex (first line the beat count, then one hex payload per line) and the
// optional DIR/end.txt ("scalar NAME VALUE" and "read NAME ADDR VALUE" lines).
//
// Optional, for a unit with a clear strobe or an AXI4 read master (the KVMU):
// - DIR/phases.txt: the run in phases, one line each of "name=count" tokens (beats of each
//   stream in that phase; "clear=1": a one-cycle clear strobe, with no input beat offered,
//   before the phase's inputs start). A phase's inputs start once every stream has reached
//   the counts of the phases before it (outputs received, inputs taken).
// - An AXI4 read slave: DIR/mem.hex (the memory image, one bus beat per line from the base
//   address) and DIR/axi.txt ("base B", "max_burst M", "outstanding O", "boundary 4096", and
//   one "slverr I" line per image beat I answered RRESP SLVERR, its data unchanged). AR
//   is accepted with the sinks' stalls and compared as the output stream "ar" (payload
//   araddr | arlen << addr_bits); every accepted burst is checked (INCR, full-width beats,
//   ID 0, aligned, inside the image, at most max_burst beats, not crossing a boundary, at
//   most outstanding bursts in flight); R beats return in order with the sources' pauses,
//   RRESP OKAY (SLVERR on the slverr beats), RLAST on the last beat of each burst.
//
// Every cycle: each source holds its beat until ready (random idle cycles and idle bursts
// between beats), each sink drives ready (random stalls and stall bursts), handshakes are
// sampled before the rising edge, every output beat is compared with the next expected one of
// its stream. The PRNG (xoshiro256**) is seeded from --seed only, so a run replays exactly.
// One line on stdout: "FAST PASS|FAIL unit=... transactions=... cycles=... mismatches=..."
// plus the first mismatch (a transaction is a beat of the stream FAST_COUNT names; cycles
// run from the reset's release to the end of --drain cycles after the last expected beat); exit 0 on PASS, 1 on FAIL, 2 on bad arguments or files.

#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "verilated.h"
#if VM_COVERAGE
#include "verilated_cov.h"
#endif

static const int MAX_WORDS = 64;  // payloads up to 2048 bits

struct Rng {  // xoshiro256**, seeded through splitmix64
    uint64_t s[4];
    explicit Rng(uint64_t seed) {
        for (auto& x : s) {
            seed += 0x9e3779b97f4a7c15ULL;
            uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            x = z ^ (z >> 31);
        }
    }
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    uint64_t next() {
        uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
        s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45);
        return r;
    }
    // true with probability p (p given as a 32-bit threshold)
    bool chance(uint32_t p32) { return (uint32_t)(next() >> 32) < p32; }
    uint64_t below(uint64_t n) { return n ? next() % n : 0; }
};

// Payload access for every Verilator port type: CData/SData/IData/QData and VlWide<N>.
template <typename T> static void put(T& port, const uint32_t* w) {
    port = (T)((uint64_t)w[0] | ((uint64_t)w[1] << 32));
}
template <std::size_t N> static void put(VlWide<N>& port, const uint32_t* w) {
    for (std::size_t i = 0; i < N; ++i) port[i] = w[i];
}
template <typename T> static void get(const T& port, uint32_t* w) {
    uint64_t v = (uint64_t)port;
    w[0] = (uint32_t)v;
    w[1] = (uint32_t)(v >> 32);
}
template <std::size_t N> static void get(const VlWide<N>& port, uint32_t* w) {
    for (std::size_t i = 0; i < N; ++i) w[i] = port[i];
}

struct Beats {  // a stream's payloads, words() 32-bit words each
    int width = 0;
    size_t n = 0;
    std::vector<uint32_t> data;
    int words() const { return width <= 64 ? 2 : (width + 31) / 32; }
    const uint32_t* at(size_t i) const { return &data[i * words()]; }
};

struct Pacing {  // a random pause profile: single pauses and long bursts
    uint32_t p = 0, burst = 0;
    uint64_t burst_max = 0, left = 0;
    bool pause(Rng& rng) {
        if (left) { --left; return true; }
        if (burst && rng.chance(burst)) { left = rng.below(burst_max); return true; }
        return p && rng.chance(p);
    }
};

struct InStream {
    std::string name;
    uint8_t* valid;
    uint8_t* ready;
    std::function<void(const uint32_t*)> set;
    Beats beats;
    size_t next = 0;
    bool fired = false;
    Pacing pacing;
    std::vector<uint64_t> times;
};

struct OutStream {
    std::string name;
    uint8_t* valid;
    uint8_t* ready;
    std::function<void(uint32_t*)> read;
    Beats beats;
    size_t got = 0;
    Pacing pacing;
    std::vector<uint64_t> times;
    std::function<void(const uint32_t*)> on_fire;  // called on each handshake (AXI AR)
};

struct AxiRead {  // an AXI4 read master's ports (AR, R), served by the harness's memory
    bool on = false;
    int addr_bits = 0, data_bits = 0;
    uint8_t *arvalid = nullptr, *rvalid = nullptr, *rready = nullptr, *rlast = nullptr,
            *rresp = nullptr, *rid = nullptr;
    std::function<uint64_t()> araddr, arlen, arsize, arburst, arid;
    std::function<void(const uint32_t*)> rdata;
};

struct Harness {
    uint8_t* clk = nullptr;
    uint8_t* rst = nullptr;
    uint8_t* clear = nullptr;  // a clear strobe input (phases.txt "clear=1")
    AxiRead axi;
    std::function<void()> eval;
    std::vector<InStream> ins;
    std::vector<OutStream> outs;
    struct Scalar { std::string name; std::function<uint64_t()> get; };
    struct Read { std::string name; std::function<void(uint64_t)> addr; std::function<uint64_t()> data; };
    std::vector<Scalar> scalars;
    std::vector<Read> reads;
    void add_in(const char* name, int width, uint8_t* v, uint8_t* r, std::function<void(const uint32_t*)> f) {
        InStream s; s.name = name; s.valid = v; s.ready = r; s.set = f; s.beats.width = width;
        ins.push_back(std::move(s));
    }
    void add_out(const char* name, int width, uint8_t* v, uint8_t* r, std::function<void(uint32_t*)> f) {
        OutStream s; s.name = name; s.valid = v; s.ready = r; s.read = f; s.beats.width = width;
        outs.push_back(std::move(s));
    }
    void add_scalar(const char* name, std::function<uint64_t()> f) { scalars.push_back({name, f}); }
    // The AR channel becomes the output stream "ar" (payload araddr | arlen << addr_bits).
    void add_axi_read(int addr_bits, int data_bits, uint8_t* arvalid, uint8_t* arready,
                      std::function<uint64_t()> araddr, std::function<uint64_t()> arlen,
                      std::function<uint64_t()> arsize, std::function<uint64_t()> arburst,
                      std::function<uint64_t()> arid, uint8_t* rvalid, uint8_t* rready,
                      std::function<void(const uint32_t*)> rdata, uint8_t* rlast, uint8_t* rresp,
                      uint8_t* rid) {
        axi.on = true;
        axi.addr_bits = addr_bits; axi.data_bits = data_bits;
        axi.arvalid = arvalid; axi.araddr = araddr; axi.arlen = arlen; axi.arsize = arsize;
        axi.arburst = arburst; axi.arid = arid; axi.rvalid = rvalid; axi.rready = rready;
        axi.rdata = rdata; axi.rlast = rlast; axi.rresp = rresp; axi.rid = rid;
        add_out("ar", addr_bits + 8, arvalid, arready, [araddr, arlen, addr_bits](uint32_t* w) {
            unsigned __int128 v = (unsigned __int128)araddr() | ((unsigned __int128)arlen() << addr_bits);
            for (int i = 0; i < 4; ++i) w[i] = (uint32_t)(v >> (32 * i));
        });
    }
    void add_read(const char* name, std::function<void(uint64_t)> a, std::function<uint64_t()> d) {
        reads.push_back({name, a, d});
    }
};

#include "fast_unit.h"  // FAST_UNIT, FastTop and fast_bind(FastTop*, Harness&)

static void die(const std::string& msg) {
    std::fprintf(stdout, "FAST ERROR unit=%s %s\n", FAST_UNIT, msg.c_str());
    std::exit(2);
}

static bool load(const std::string& path, Beats& b) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return false;
    std::fseek(f, 0, SEEK_END);
    long size = std::ftell(f);
    std::fseek(f, 0, SEEK_SET);
    std::string text(size, '\0');
    if (size && std::fread(&text[0], 1, size, f) != (size_t)size) die("cannot read " + path);
    std::fclose(f);
    size_t pos = 0;
    auto line = [&](std::string& out) {
        if (pos >= text.size()) return false;
        size_t end = text.find('\n', pos);
        if (end == std::string::npos) end = text.size();
        out.assign(text, pos, end - pos);
        pos = end + 1;
        return true;
    };
    std::string l;
    if (!line(l)) die(path + ": empty, expected the beat count on line 1");
    b.n = std::strtoull(l.c_str(), nullptr, 10);
    const int nw = b.words();
    b.data.assign(b.n * nw, 0);
    for (size_t i = 0; i < b.n; ++i) {
        if (!line(l) || l.empty()) die(path + ": fewer beats than its count " + std::to_string(b.n));
        uint32_t* w = &b.data[i * nw];
        int bit = 0;
        for (size_t k = l.size(); k-- > 0; bit += 4) {
            char c = l[k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0 || (d && bit >= b.width + 3)) die(path + ": bad payload on line " + std::to_string(i + 2) + ": " + l);
            if (d) w[bit / 32] |= (uint32_t)d << (bit % 32);  // leading zeros may be written
        }
    }
    return true;
}

static std::string hex(const uint32_t* w, int width) {
    int nw = (width + 31) / 32;
    std::string s = "0x";
    char buf[16];
    bool lead = true;
    for (int i = nw - 1; i >= 0; --i) {
        std::snprintf(buf, sizeof buf, lead ? "%x" : "%08x", w[i]);
        if (lead && w[i] == 0 && i > 0) continue;
        s += buf;
        lead = false;
    }
    return s;
}

static void mask(uint32_t* w, int width) {
    int nw = width <= 64 ? 2 : (width + 31) / 32;
    for (int i = 0; i < nw; ++i) {
        int lo = i * 32;
        if (lo >= width) w[i] = 0;
        else if (width - lo < 32) w[i] &= (1u << (width - lo)) - 1;
    }
}

static uint32_t prob(const char* flag, const char* text) {
    char* end;
    double p = std::strtod(text, &end);
    if (*end || !(p >= 0.0 && p < 1.0)) die(std::string(flag) + " must be a probability in [0, 1), not " + text);
    return (uint32_t)(p * 4294967296.0);
}

static uint64_t count(const char* flag, const char* text) {
    char* end;
    unsigned long long v = std::strtoull(text, &end, 10);
    if (*end || !*text || text[0] == '-') die(std::string(flag) + " must be a non-negative integer, not " + text);
    return v;
}

int main(int argc, char** argv) {
    if (argc < 2) die("usage: harness DIR [--seed N] [--idle P] [--stall P] [--idle-burst P] [--stall-burst P] [--burst-max N] [--drain N] [--timeout N] [--times] [--coverage FILE]");
    std::string dir = argv[1];
    uint64_t seed = 1, burst_max = 0, drain = 16, timeout = 100000;
    uint32_t idle = 0, stall = 0, idle_burst = 0, stall_burst = 0;
    bool times = false;
    std::string coverage;  // --coverage FILE: write Verilator's coverage.dat there
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--times") { times = true; continue; }
        if (i + 1 >= argc) die(a + " needs a value");
        const char* v = argv[++i];
        if (a == "--seed") seed = count("--seed", v);
        else if (a == "--idle") idle = prob("--idle", v);
        else if (a == "--stall") stall = prob("--stall", v);
        else if (a == "--idle-burst") idle_burst = prob("--idle-burst", v);
        else if (a == "--stall-burst") stall_burst = prob("--stall-burst", v);
        else if (a == "--burst-max") burst_max = count("--burst-max", v);
        else if (a == "--drain") drain = count("--drain", v);
        else if (a == "--timeout") timeout = count("--timeout", v);
        else if (a == "--coverage") coverage = v;
        else die("unknown option " + a);
    }

#if !VM_COVERAGE
    if (!coverage.empty()) die("--coverage needs a harness built with coverage");
#endif
    auto ctx = std::make_unique<VerilatedContext>();
    ctx->commandArgs(1, argv);
    auto top = std::make_unique<FastTop>(ctx.get());
    Harness h;
    fast_bind(top.get(), h);
    Rng rng(seed);
    for (auto& s : h.ins) {
        if (!load(dir + "/in_" + s.name + ".hex", s.beats)) die("missing " + dir + "/in_" + s.name + ".hex");
        s.pacing = {idle, idle_burst, burst_max, 0};
    }
    for (auto& s : h.outs) {
        if (!load(dir + "/out_" + s.name + ".hex", s.beats)) die("missing " + dir + "/out_" + s.name + ".hex");
        s.pacing = {stall, stall_burst, burst_max, 0};
    }
    // Phases (cumulative limits per stream) and the AXI memory, when the unit has them.
    struct Phase { bool clear = false; std::vector<size_t> in_lim, out_lim; };
    std::vector<Phase> phases;
    {
        std::vector<size_t> in_sum(h.ins.size(), 0), out_sum(h.outs.size(), 0);
        FILE* f = std::fopen((dir + "/phases.txt").c_str(), "r");
        if (f) {
            char line[4096];
            while (std::fgets(line, sizeof line, f)) {
                Phase ph;
                for (char* tok = std::strtok(line, " \t\r\n"); tok; tok = std::strtok(nullptr, " \t\r\n")) {
                    char* eq = std::strchr(tok, '=');
                    if (!eq) die(std::string("phases.txt: bad token ") + tok);
                    *eq = 0;
                    uint64_t v = count("phases.txt count", eq + 1);
                    bool found = false;
                    if (!std::strcmp(tok, "clear")) {
                        if (v && !h.clear) die("phases.txt: clear=1 but the unit has no clear input");
                        ph.clear = v != 0;
                        found = true;
                    }
                    for (size_t i = 0; i < h.ins.size(); ++i)
                        if (h.ins[i].name == tok) { in_sum[i] += v; found = true; }
                    for (size_t i = 0; i < h.outs.size(); ++i)
                        if (h.outs[i].name == tok) { out_sum[i] += v; found = true; }
                    if (!found) die(std::string("phases.txt: unknown stream ") + tok);
                }
                ph.in_lim = in_sum;
                ph.out_lim = out_sum;
                phases.push_back(ph);
            }
            std::fclose(f);
            for (size_t i = 0; i < h.ins.size(); ++i)
                if (in_sum[i] != h.ins[i].beats.n)
                    die("phases.txt: " + std::to_string(in_sum[i]) + " beats of " + h.ins[i].name +
                        ", in_" + h.ins[i].name + ".hex holds " + std::to_string(h.ins[i].beats.n));
        }
    }
    Beats mem;  // the AXI slave's image, one bus beat per entry from axi_base
    std::vector<uint8_t> slverr;  // per image beat: answered SLVERR
    uint64_t axi_base = 0, max_burst = 256, outstanding = 1u << 30, boundary = 4096;
    int bus_bytes = 0, size_log2 = 0;
    struct Burst { uint64_t beat; uint64_t left; };  // next image beat, beats left
    std::vector<Burst> bursts;  // accepted, in order (a deque by index)
    size_t burst_head = 0;
    Pacing r_pacing = {idle, idle_burst, burst_max, 0};
    if (h.axi.on) {
        mem.width = h.axi.data_bits;
        if (!load(dir + "/mem.hex", mem)) die("missing " + dir + "/mem.hex");
        FILE* f = std::fopen((dir + "/axi.txt").c_str(), "r");
        if (!f) die("missing " + dir + "/axi.txt");
        char key[64];
        unsigned long long v;
        slverr.assign(mem.n, 0);
        while (std::fscanf(f, "%63s %llu", key, &v) == 2) {
            if (!std::strcmp(key, "base")) axi_base = v;
            else if (!std::strcmp(key, "slverr")) {
                if (v >= mem.n) die("axi.txt: slverr beat " + std::to_string(v) + " outside the image");
                slverr[v] = 1;
            }
            else if (!std::strcmp(key, "max_burst")) max_burst = v;
            else if (!std::strcmp(key, "outstanding")) outstanding = v;
            else if (!std::strcmp(key, "boundary")) boundary = v;
            else die(std::string("axi.txt: unknown key ") + key);
        }
        std::fclose(f);
        bus_bytes = h.axi.data_bits / 8;
        while ((1 << size_log2) < bus_bytes) ++size_log2;
        if (bus_bytes < 1 || (1 << size_log2) != bus_bytes || !boundary)
            die("the AXI data width must be a power-of-two number of bytes, the boundary nonzero");
    }

    uint64_t cycle = 0, mismatches = 0, last_progress = 0;
    std::string first;
    auto mismatch = [&](const std::string& what) {
        if (!mismatches++) first = what;
    };
    // The AXI slave: every accepted AR burst is checked, then queued for its R beats.
    const uint64_t* cyclep = &cycle;
    uint64_t start_cycle = 0;
    size_t ar_count = 0;
    if (h.axi.on) {
        for (auto& s : h.outs)
            if (s.name == "ar")
                s.on_fire = [&](const uint32_t*) {
                    const uint64_t addr = h.axi.araddr(), beats = h.axi.arlen() + 1;
                    char buf[160];
                    std::snprintf(buf, sizeof buf, "AR[%zu] @%llu: burst 0x%llx+%llu beats: ", ar_count,
                                  (unsigned long long)(*cyclep - start_cycle), (unsigned long long)addr,
                                  (unsigned long long)beats);
                    std::string at = buf;
                    ++ar_count;
                    if (h.axi.arburst() != 1) mismatch(at + "arburst " + std::to_string(h.axi.arburst()) + ", not INCR (1)");
                    if (h.axi.arsize() != (uint64_t)size_log2)
                        mismatch(at + "arsize " + std::to_string(h.axi.arsize()) + ", not the full bus width (" + std::to_string(size_log2) + ")");
                    if (h.axi.arid() != 0) mismatch(at + "arid " + std::to_string(h.axi.arid()) + ", not 0");
                    if (beats > max_burst) mismatch(at + "longer than max_burst " + std::to_string(max_burst));
                    if (addr % bus_bytes) mismatch(at + "not aligned to the bus width");
                    if (addr / boundary != (addr + beats * bus_bytes - 1) / boundary)
                        mismatch(at + "crosses a " + std::to_string(boundary) + "-byte boundary");
                    const uint64_t first_beat = (addr - axi_base) / bus_bytes;
                    if (addr < axi_base || first_beat + beats > mem.n) {
                        mismatch(at + "outside the memory image (" + std::to_string(mem.n) + " beats from 0x" + hex((const uint32_t*)&axi_base, 64).substr(2) + ")");
                        bursts.push_back({(uint64_t)-1, beats});  // answered with zeros
                    } else {
                        bursts.push_back({first_beat, beats});
                    }
                    if (bursts.size() - burst_head > outstanding)
                        mismatch(at + std::to_string(bursts.size() - burst_head) + " bursts in flight, above outstanding " + std::to_string(outstanding));
                };
    }
    auto tick = [&]() {  // the rising edge, then the low half of the next cycle
        *h.clk = 1; h.eval();
        *h.clk = 0; h.eval();
        ++cycle;
    };

    *h.clk = 0;
    *h.rst = 1;
    for (auto& s : h.ins) *s.valid = 0;
    for (auto& s : h.outs) *s.ready = 0;
    if (h.clear) *h.clear = 0;
    if (h.axi.on) { *h.axi.rvalid = 0; *h.axi.rlast = 0; *h.axi.rresp = 0; *h.axi.rid = 0; }
    h.eval();
    tick(); tick();
    *h.rst = 0;
    h.eval();
    const uint64_t start = cycle;
    start_cycle = start;
    size_t phase = 0;
    bool clear_now = !phases.empty() && phases[0].clear;
    auto in_limit = [&](size_t i) { return phases.empty() ? h.ins[i].beats.n : phases[phase].in_lim[i]; };
    std::vector<uint32_t> zeros(MAX_WORDS, 0);

    uint32_t w[MAX_WORDS];
    auto t0 = std::chrono::steady_clock::now();
    bool done = false;
    uint64_t drained = 0;
    while (true) {
        // Drive: a source holds a presented beat until it is taken; a new beat may pause.
        // A clear strobe takes a cycle of its own: no input beat is offered with it.
        if (h.clear) *h.clear = clear_now;
        for (size_t i = 0; i < h.ins.size() && !clear_now; ++i) {
            auto& s = h.ins[i];
            if (!*s.valid && s.next < in_limit(i) && !s.pacing.pause(rng)) {
                s.set(s.beats.at(s.next));
                *s.valid = 1;
            }
        }
        for (auto& s : h.outs) *s.ready = !s.pacing.pause(rng);
        bool r_fired = false;
        if (h.axi.on && !*h.axi.rvalid && burst_head < bursts.size() && !r_pacing.pause(rng)) {
            const Burst& b = bursts[burst_head];
            h.axi.rdata(b.beat == (uint64_t)-1 ? zeros.data() : mem.at(b.beat));
            *h.axi.rresp = b.beat != (uint64_t)-1 && slverr[b.beat] ? 2 : 0;  // SLVERR
            *h.axi.rlast = b.left == 1;
            *h.axi.rvalid = 1;
        }
        h.eval();
        if (h.axi.on && *h.axi.rvalid && *h.axi.rready) {  // before AR: a burst may end as one starts
            Burst& b = bursts[burst_head];
            if (b.beat != (uint64_t)-1) ++b.beat;
            if (!--b.left) ++burst_head;
            r_fired = true;
            last_progress = cycle;
        }
        // Sample the handshakes of this cycle (they complete at the coming rising edge).
        for (auto& s : h.ins) {
            if (*s.valid && *s.ready) {
                if (times) s.times.push_back(cycle - start);
                ++s.next;
                s.fired = true;
                last_progress = cycle;
            }
        }
        for (auto& s : h.outs) {
            if (*s.valid && *s.ready) {
                std::memset(w, 0, sizeof w);
                s.read(w);
                mask(w, s.beats.width);
                if (times) s.times.push_back(cycle - start);
                if (s.on_fire) s.on_fire(w);
                if (s.got >= s.beats.n) {
                    mismatch(s.name + "[" + std::to_string(s.got) + "] @" + std::to_string(cycle - start) +
                             ": extra beat " + hex(w, s.beats.width) + " after the " +
                             std::to_string(s.beats.n) + " expected");
                } else {
                    const uint32_t* e = s.beats.at(s.got);
                    if (std::memcmp(e, w, sizeof(uint32_t) * s.beats.words()) != 0)
                        mismatch(s.name + "[" + std::to_string(s.got) + "] @" + std::to_string(cycle - start) +
                                 ": expected " + hex(e, s.beats.width) + " got " + hex(w, s.beats.width));
                }
                ++s.got;
                last_progress = cycle;
            }
        }
        tick();
        for (auto& s : h.ins)
            if (s.fired) {  // taken at this edge: a new beat is driven next cycle unless it pauses
                *s.valid = 0;
                s.fired = false;
            }
        if (r_fired) *h.axi.rvalid = 0;
        if (clear_now) { clear_now = false; last_progress = cycle; }
        // The next phase starts once every stream has reached this phase's counts.
        while (phase + 1 < phases.size()) {
            bool reached = true;
            for (size_t i = 0; i < h.ins.size(); ++i) reached &= h.ins[i].next >= phases[phase].in_lim[i];
            for (size_t i = 0; i < h.outs.size(); ++i) reached &= h.outs[i].got >= phases[phase].out_lim[i];
            if (!reached) break;
            ++phase;
            if (phases[phase].clear) { clear_now = true; break; }
        }
        bool all_in = true, all_out = true;
        for (auto& s : h.ins) all_in &= s.next >= s.beats.n;
        for (auto& s : h.outs) all_out &= s.got >= s.beats.n;
        if (all_in && all_out) done = true;
        if (done && drained++ >= drain) break;
        if (cycle - last_progress > timeout) {
            std::string what = "timeout: no handshake for " + std::to_string(timeout) + " cycles;";
            for (auto& s : h.ins) what += " " + s.name + " " + std::to_string(s.next) + "/" + std::to_string(s.beats.n) + " sent";
            for (auto& s : h.outs) what += " " + s.name + " " + std::to_string(s.got) + "/" + std::to_string(s.beats.n) + " received";
            if (!phases.empty()) what += "; phase " + std::to_string(phase + 1) + "/" + std::to_string(phases.size());
            mismatch(what);
            break;
        }
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const uint64_t sim_cycles = cycle - start;
    // A transaction is a beat of the stream FAST_COUNT names (HCU tokens, WTU rows' commands,
    // KVMU selections' summaries).
    uint64_t transactions = 0;
    for (auto& s : h.ins) if (s.name == FAST_COUNT) transactions = s.next;
    for (auto& s : h.outs) if (s.name == FAST_COUNT) transactions = s.got;

    // End-of-run state: scalar outputs, then addressed reads (one cycle each).
    for (auto& s : h.outs) *s.ready = 0;
    for (auto& s : h.ins) *s.valid = 0;
    if (h.axi.on) *h.axi.rvalid = 0;
    h.eval();
    FILE* f = std::fopen((dir + "/end.txt").c_str(), "r");
    if (f) {
        char kind[32], name[128];
        unsigned long long a, v;
        while (std::fscanf(f, "%31s %127s", kind, name) == 2) {
            if (!std::strcmp(kind, "scalar") && std::fscanf(f, "%llu", &v) == 1) {
                bool found = false;
                for (auto& s : h.scalars)
                    if (s.name == name) {
                        found = true;
                        uint64_t got = s.get();
                        if (got != v) mismatch(std::string(name) + ": expected " + std::to_string(v) + " got " + std::to_string(got));
                    }
                if (!found) die(std::string("end.txt: unknown scalar ") + name);
            } else if (!std::strcmp(kind, "read") && std::fscanf(f, "%llu %llu", &a, &v) == 2) {
                bool found = false;
                for (auto& r : h.reads)
                    if (r.name == name) {
                        found = true;
                        r.addr(a);
                        h.eval();
                        tick();
                        uint64_t got = r.data();
                        if (got != v) mismatch(std::string(name) + "[" + std::to_string(a) + "]: expected " + std::to_string(v) + " got " + std::to_string(got));
                    }
                if (!found) die(std::string("end.txt: unknown read ") + name);
            } else {
                die(std::string("end.txt: bad line starting with ") + kind);
            }
        }
        std::fclose(f);
    }
    if (times) {
        FILE* t = std::fopen((dir + "/times.txt").c_str(), "w");
        if (!t) die("cannot write " + dir + "/times.txt");
        for (auto& s : h.ins) {
            std::fprintf(t, "%s", s.name.c_str());
            for (auto c : s.times) std::fprintf(t, " %" PRIu64, c);
            std::fprintf(t, "\n");
        }
        for (auto& s : h.outs) {
            std::fprintf(t, "%s", s.name.c_str());
            for (auto c : s.times) std::fprintf(t, " %" PRIu64, c);
            std::fprintf(t, "\n");
        }
        std::fclose(t);
    }
    std::printf("FAST %s unit=%s seed=%" PRIu64 " transactions=%" PRIu64 " cycles=%" PRIu64
                " mismatches=%" PRIu64 " seconds=%.6f cycles_per_s=%.0f",
                mismatches ? "FAIL" : "PASS", FAST_UNIT, seed, transactions, sim_cycles, mismatches,
                seconds, seconds > 0 ? sim_cycles / seconds : 0.0);
    if (mismatches) std::printf(" first: %s", first.c_str());
    std::printf("\n");
    top->final();
#if VM_COVERAGE
    if (!coverage.empty()) ctx->coveragep()->write(coverage.c_str());
#endif
    return mismatches ? 1 : 0;
}
