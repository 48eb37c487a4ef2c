#include "sim/framed_meter.hpp"

#include <utility>

namespace mts::sim {

namespace iec = drivers::iec;
using drivers::actions;

framed_meter::framed_meter(meter_identity identity, meter_faults faults, const framed_meter_timing& timing)
    : model_(std::move(identity), std::move(faults)), timing_(timing) {}

unix_seconds framed_meter_timing::meter_now(const meter_identity& identity, drivers::unix_ms now) const {
  const unix_seconds t = pinned_now ? *pinned_now : floor_div(now, 1000);
  return t + identity.utc_offset_minutes * 60 + identity.clock_offset_seconds;
}

unix_seconds framed_meter::meter_now() const { return timing_.meter_now(model_.identity(), now_); }

void framed_meter::arm(actions& out, std::chrono::milliseconds after) {
  out.push_back(drivers::arm_timer{after, ++timer_id_});
}

void framed_meter::close(actions& out) {
  if (phase_ == phase::closed)
    return;
  phase_ = phase::closed;
  pending_.reset();
  out.push_back(drivers::finish{});
}

void framed_meter::switch_baud(actions& out, int baud) {
  line_.baud = baud;
  out.push_back(drivers::change_line{line_});
}

void framed_meter::emit(actions& out, std::string bytes) {
  if (send_until_drop(out, std::move(bytes), sent_, model_.faults().drop_after_bytes))
    close(out);
}

void framed_meter::reply(actions& out, std::string message, bool block) {
  std::string wire = message;
  if (block) {
    last_ = message;
    ++blocks_;
    const int k = model_.faults().corrupt_bcc_every;
    if (k > 0 && blocks_ % static_cast<std::size_t>(k) == 0)
      wire.back() = static_cast<char>((wire.back() ^ 0x01) & 0x7F);
  }
  pending_ = model_.faults().garbage_before_reply + wire;
  if (timing_.reaction_delay.count() > 0)
    arm(out, timing_.reaction_delay);
  else
    flush(out);
}

// Send the pending reply and apply what waits for it (line change, close).
void framed_meter::flush(actions& out) {
  std::string bytes = std::move(*pending_);
  pending_.reset();
  emit(out, std::move(bytes));
  if (phase_ == phase::closed)
    return;
  if (line_after_pending_) {
    line_ = *line_after_pending_;
    line_after_pending_.reset();
    out.push_back(drivers::change_line{line_});
  }
  if (close_after_pending_)
    close(out);
}

actions framed_meter::on_link_up(drivers::unix_ms now) {
  actions out;
  if (phase_ != phase::idle)
    return out;
  now_ = now;
  phase_ = phase::request;
  arm(out, timing_.inactivity_timeout);
  return out;
}

actions framed_meter::on_link_down(drivers::unix_ms now) {
  now_ = now;
  phase_ = phase::closed;
  pending_.reset();
  return {};
}

actions framed_meter::on_timer(std::uint64_t id, drivers::unix_ms now) {
  actions out;
  if (phase_ == phase::closed || phase_ == phase::idle || id != timer_id_)
    return out;
  now_ = now;
  if (!pending_) {
    close(out); // inactivity
    return out;
  }
  flush(out);
  if (phase_ != phase::closed)
    arm(out, timing_.inactivity_timeout);
  return out;
}

actions framed_meter::on_bytes(std::string_view data, drivers::unix_ms now) {
  actions out;
  if (phase_ == phase::closed || phase_ == phase::idle)
    return out;
  now_ = now;
  if (model_.faults().silent) {
    arm(out, timing_.inactivity_timeout);
    return out;
  }
  parser_.feed(data);
  while (phase_ != phase::closed) {
    auto m = parser_.next();
    if (!m)
      break;
    handle(out, *m);
  }
  if (phase_ != phase::closed && !pending_ && !data.empty())
    arm(out, timing_.inactivity_timeout);
  return out;
}

void framed_meter::handle(actions& out, const iec::message& m) {
  using k = iec::message_kind;
  if (m.kind == k::oversize)
    return;
  if (m.kind == k::request) {
    if (phase_ != phase::request && phase_ != phase::option)
      return;
    const auto& want = model_.identity().outstation_address;
    if (!m.text.empty() && !want.empty() && m.text != want)
      return; // not addressed to this meter
    phase_ = phase::option;
    parser_.expect_option_select(true);
    reply(out, iec::identification_message(identification()), false);
    return;
  }
  if (phase_ == phase::request)
    return;
  if (phase_ == phase::option) {
    on_option_select(out, m);
    return;
  }
  if (m.kind == k::nak) {
    if (!last_.empty())
      reply(out, last_, false);
    return;
  }
  if (m.kind == k::ack) {
    on_ack(out);
    return;
  }
  if (m.kind != k::command)
    return;
  if (!m.bcc_ok) {
    reply(out, std::string(1, iec::nak), false);
    return;
  }
  on_command(out, m);
}

} // namespace mts::sim
