// Example fixed-rate control loop around the generated policy (edgerl export --format c).
//
//   g++ -std=c++11 -O2 -Wall -Wextra -c main.cpp && gcc -std=c99 -O3 -c policy.c && g++ main.o policy.o -lm -o control
//   ./control [ticks] [rate_hz]
//
// Each tick reads an observation, calls edgerl_act (a recurrent policy: edgerl_step, its state fed
// back in place; zero it with memset whenever the robot starts an episode) and writes the action,
// then sleeps until the next tick on an absolute schedule (no drift). A tick whose work ends after its deadline counts
// as a miss; a NaN/inf observation or action keeps the last safe action and counts as a fault.
// On a microcontroller replace read_sensors/write_actuators with the board's drivers and the
// clock with a hardware timer; the policy call itself needs nothing but policy.h/policy.c.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "policy.h"

namespace {

// Stand-in for the robot's state estimator: a slowly varying observation.
void read_sensors(long tick, float *obs)
{
    for (int i = 0; i < EDGERL_OBS_DIM; ++i) {
        obs[i] = 0.01f * static_cast<float>((tick + 7 * i) % 200 - 100);
    }
}

void write_actuators(const edgerl_action_t *action)
{
    (void)action;  // send to the motor drivers here
}

}  // namespace

int main(int argc, char **argv)
{
    const long ticks = argc > 1 ? std::atol(argv[1]) : 1000;
    const double rate_hz = argc > 2 ? std::atof(argv[2]) : 100.0;
    if (ticks <= 0 || !(rate_hz > 0.0)) {
        std::fprintf(stderr, "usage: %s [ticks > 0] [rate_hz > 0]\n", argv[0]);
        return 2;
    }
    using clock = std::chrono::steady_clock;
    const auto period = std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(1.0 / rate_hz));

    static edgerl_scratch scratch;                  // one per control thread
    float obs[EDGERL_OBS_DIM];
    edgerl_action_t action[EDGERL_ACT_DIM] = {};    // the last safe action (zeros until the first)
#if EDGERL_RECURRENT
    static float state[EDGERL_STATE_SIZE];          // the policy's memory: zeros = an episode starts
#endif
    long misses = 0, faults = 0;
    double worst_us = 0.0;

    auto next = clock::now() + period;
    for (long tick = 0; tick < ticks; ++tick) {
        const auto start = clock::now();
        read_sensors(tick, obs);
#if EDGERL_RECURRENT
        const int rc = edgerl_step(obs, state, action, state, &scratch);  // on an error the state is kept
#else
        const int rc = edgerl_act(obs, action, &scratch);
#endif
        if (rc != EDGERL_OK) {
            ++faults;                               // action untouched: the last safe one is sent
        }
        write_actuators(action);
        const auto done = clock::now();
        const double us = std::chrono::duration<double, std::micro>(done - start).count();
        if (us > worst_us) worst_us = us;
        if (done > next) ++misses;                  // the work overran this tick's deadline
        std::this_thread::sleep_until(next);
        next += period;
    }
    std::printf("policy %s for %s (sha256 %.16s...): %ld ticks at %.1f Hz, deadline misses %ld, faults %ld, "
                "worst tick %.1f us, last action[0] %g\n",
                EDGERL_ALGO, EDGERL_ENV_ID, EDGERL_SOURCE_SHA256, ticks, rate_hz, misses, faults, worst_us,
                static_cast<double>(action[0]));
    return 0;
}
