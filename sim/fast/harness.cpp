// Fast self-checking Verilator harness of one DRE unit (sim/fast/__init__.py builds and runs it).
//
// The unit's streams are bound in the generated header fast_unit.h (one add_in/add_out per
// amaranth.lib.stream port, add_scalar/add_read for the state checked at the end). Golden
// stimulus and expected beats come from files written by sim.fast: DIR/in_<stream>.hex and
// DIR/out_<stream>.hex (first line the beat count, then one hex payload per line) and the
// optional DIR/end.txt ("scalar NAME VALUE" and "read NAME ADDR VALUE" lines).
//
// Every cycle: each source holds its beat until ready (random idle cycles and idle bursts
// between beats), each sink drives ready (random stalls and stall bursts), handshakes are
// sampled before the rising edge, every output beat is compared with the next expected one of
// its stream. The PRNG (xoshiro256**) is seeded from --seed only, so a run replays exactly.
// One line on stdout: "FAST PASS|FAIL unit=... transactions=... cycles=... mismatches=..."
// plus the first mismatch (a transaction is a beat taken on the first input stream; cycles
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
};

struct Harness {
    uint8_t* clk = nullptr;
    uint8_t* rst = nullptr;
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
            if (d < 0 || bit >= b.width + 3) die(path + ": bad payload on line " + std::to_string(i + 2) + ": " + l);
            w[bit / 32] |= (uint32_t)d << (bit % 32);
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

    uint64_t cycle = 0, mismatches = 0, last_progress = 0;
    std::string first;
    auto mismatch = [&](const std::string& what) {
        if (!mismatches++) first = what;
    };
    auto tick = [&]() {  // the rising edge, then the low half of the next cycle
        *h.clk = 1; h.eval();
        *h.clk = 0; h.eval();
        ++cycle;
    };

    *h.clk = 0;
    *h.rst = 1;
    for (auto& s : h.ins) *s.valid = 0;
    for (auto& s : h.outs) *s.ready = 0;
    h.eval();
    tick(); tick();
    *h.rst = 0;
    h.eval();
    const uint64_t start = cycle;

    uint32_t w[MAX_WORDS];
    auto t0 = std::chrono::steady_clock::now();
    bool done = false;
    uint64_t drained = 0;
    while (true) {
        // Drive: a source holds a presented beat until it is taken; a new beat may pause.
        for (auto& s : h.ins) {
            if (!*s.valid && s.next < s.beats.n && !s.pacing.pause(rng)) {
                s.set(s.beats.at(s.next));
                *s.valid = 1;
            }
        }
        for (auto& s : h.outs) *s.ready = !s.pacing.pause(rng);
        h.eval();
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
        bool all_in = true, all_out = true;
        for (auto& s : h.ins) all_in &= s.next >= s.beats.n;
        for (auto& s : h.outs) all_out &= s.got >= s.beats.n;
        if (all_in && all_out) done = true;
        if (done && drained++ >= drain) break;
        if (cycle - last_progress > timeout) {
            std::string what = "timeout: no handshake for " + std::to_string(timeout) + " cycles;";
            for (auto& s : h.ins) what += " " + s.name + " " + std::to_string(s.next) + "/" + std::to_string(s.beats.n) + " sent";
            for (auto& s : h.outs) what += " " + s.name + " " + std::to_string(s.got) + "/" + std::to_string(s.beats.n) + " received";
            mismatch(what);
            break;
        }
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const uint64_t sim_cycles = cycle - start;
    // A transaction is a beat of the first input stream (HCU tokens, WTU rows' commands).
    const uint64_t transactions = h.ins.empty() ? 0 : h.ins[0].next;

    // End-of-run state: scalar outputs, then addressed reads (one cycle each).
    for (auto& s : h.outs) *s.ready = 0;
    for (auto& s : h.ins) *s.valid = 0;
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
