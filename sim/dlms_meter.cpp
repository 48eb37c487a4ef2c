#include "sim/dlms_meter.hpp"

#include "sim/sim_config.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace mts::sim {

namespace dl = drivers::dlms;
using drivers::actions;

bool is_dlms_driver(const std::string& driver) { return driver == "dlms"; }

namespace {

// The six channels' register groups C (1.0.C.8.0.255 and 1.0.C.29.0.255).
constexpr std::uint8_t channel_group[channel_count] = {1, 2, 5, 6, 7, 8};
constexpr int unit_wh = 30, unit_vah = 31, unit_varh = 32;

int channel_unit(int c) {
  if (c == channel_count)
    return unit_vah;
  return c <= 1 ? unit_wh : unit_varh;
}

dl::obis register_obis(int c) {
  return c == channel_count ? dl::obis{1, 0, 9, 8, 0, 255} : dl::obis{1, 0, channel_group[c], 8, 0, 255};
}
dl::obis interval_obis(int c) { return dl::obis{1, 0, channel_group[c], 29, 0, 255}; }

std::vector<dl::obis> default_registers() {
  std::vector<dl::obis> out;
  for (int c = 0; c < channel_count; ++c)
    out.push_back(register_obis(c));
  return out;
}

// Attributes per class (the short-name range of an object).
int attribute_count(std::uint16_t class_id) {
  switch (class_id) {
  case 1: return 2;
  case 3: return 3;
  case 7: return 8;
  case 8: return 9;
  case 12: return 4;
  case 15: return 11;
  default: return 1;
  }
}

dl::data unsigned_value(std::int64_t v) {
  if (v >= 0 && v <= std::numeric_limits<std::uint32_t>::max())
    return dl::data::double_long_unsigned32(static_cast<std::uint32_t>(v));
  return dl::data::long64_unsigned(static_cast<std::uint64_t>(std::max<std::int64_t>(v, 0)));
}

dl::data capture_object(std::uint16_t class_id, const dl::obis& ln, std::int8_t attribute) {
  return dl::data::structure({dl::data::long_unsigned16(class_id), dl::data::octet_string(dl::obis_bytes(ln)),
                              dl::data::integer8(attribute), dl::data::long_unsigned16(0)});
}

std::uint64_t identity_key(const meter_identity& identity) {
  std::uint64_t key = splitmix64(identity.seed ^ 0xD1A5ull);
  for (unsigned char c : identity.serial)
    key = splitmix64(key ^ c);
  return key;
}

void put_be64(std::string& out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i)
    out += static_cast<char>((v >> (8 * i)) & 0xFF);
}

std::optional<std::uint32_t> address_number(const std::string& text, std::uint32_t max) {
  if (text.empty() || text.size() > 9 || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  const auto v = static_cast<std::uint32_t>(std::stoul(text));
  if (v > max)
    return std::nullopt;
  return v;
}

std::uint32_t meter_max_pdu(const meter_faults& f) {
  return f.max_pdu > 0 ? static_cast<std::uint32_t>(f.max_pdu) : cosem::default_max_pdu;
}
std::uint32_t meter_max_info(const meter_faults& f) {
  return f.max_info > 0 ? static_cast<std::uint32_t>(f.max_info) : cosem::default_max_info;
}

bool is_hls(dl::authentication a) {
  return a == dl::authentication::high_md5 || a == dl::authentication::high_sha1 ||
         a == dl::authentication::high_sha256;
}

} // namespace

drivers::dlms_config dlms_settings_of(const meter_identity& identity) {
  drivers::dlms_config c = identity.dlms ? *identity.dlms : drivers::dlms_ln_config();
  if (c.register_obis.empty())
    c.register_obis = default_registers();
  return c;
}

namespace cosem {

std::vector<object> objects(const drivers::dlms_config& config) {
  const bool ln = config.referencing == drivers::dlms_referencing::ln;
  std::vector<object> out;
  out.push_back(object{object_kind::association, static_cast<std::uint16_t>(ln ? 15 : 12),
                       static_cast<std::uint8_t>(ln ? 1 : 2), association_ln, association_sn_base, -1});
  auto add = [&](object_kind kind, std::uint16_t class_id, std::uint8_t version, const dl::obis& code, int channel) {
    const auto position = static_cast<std::uint16_t>(out.size() - 1);
    out.push_back(object{kind, class_id, version, code, static_cast<std::uint16_t>(0x1000 + 0x80 * position), channel});
  };
  add(object_kind::serial, 1, 0, config.serial_number_obis, -1);
  add(object_kind::clock, 8, 0, config.clock_obis, -1);
  for (int c = 0; c <= channel_count; ++c)
    add(object_kind::reg, 3, 0, register_obis(c), c);
  for (int c = 0; c < channel_count; ++c)
    add(object_kind::interval, 3, 0, interval_obis(c), c);
  add(object_kind::profile_status, 1, 0, profile_status_obis, -1);
  add(object_kind::event_code, 1, 0, event_code_obis, -1);
  add(object_kind::profile, 7, 1, config.load_profile_obis.value_or(default_profile_obis), -1);
  add(object_kind::event_log, 7, 1, config.event_log_obis.value_or(default_event_log_obis), -1);
  return out;
}

std::string server_challenge(const meter_identity& identity, std::uint64_t session_number) {
  const std::uint64_t key = identity_key(identity);
  std::string out;
  put_be64(out, splitmix64(key + 2 * session_number), 8);
  put_be64(out, splitmix64(key + 2 * session_number + 1), 8);
  return out;
}

std::string server_system_title(const meter_identity& identity) {
  std::string out = "SIM";
  put_be64(out, splitmix64(identity_key(identity) ^ 0x5354ull), 5);
  return out;
}

std::optional<int> wire_deviation(const drivers::dlms_config& config) {
  switch (config.clock_deviation) {
  case dl::deviation_rule::blue_book: return -config.clock_utc_offset_minutes;
  case dl::deviation_rule::inverted: return config.clock_utc_offset_minutes;
  case dl::deviation_rule::ignore: return std::nullopt;
  }
  return std::nullopt;
}

std::vector<unix_seconds> profile_starts(const meter_model& model, unix_seconds meter_now) {
  std::vector<unix_seconds> out;
  for (unix_seconds start = half_hour_floor(meter_now) - half_hour; start >= data_epoch && out.size() < profile_capacity;
       start -= half_hour)
    if (!model.is_gap(start))
      out.push_back(start);
  std::reverse(out.begin(), out.end());
  return out;
}

profile_row profile_row_at(const meter_model& model, unix_seconds start) {
  profile_row row;
  row.start = start;
  row.status = model.interval_status(start);
  for (int c = 0; c < channel_count; ++c)
    row.wh[c] = model.interval_wh(static_cast<channel>(c), start);
  return row;
}

std::vector<event_row> events(const meter_model& model, unix_seconds meter_now) {
  std::vector<event_row> out; // newest first, reversed at the end
  if (model.faults().power_failure_every_days <= 0)
    return out;
  for (unix_seconds day = floor_div(meter_now, seconds_per_day) * seconds_per_day;
       day >= data_epoch && out.size() < event_capacity; day -= seconds_per_day) {
    for (unix_seconds h = day + seconds_per_day - half_hour; h >= day && out.size() < event_capacity; h -= half_hour) {
      if (!(model.interval_status(h) & status_power_failure))
        continue;
      if (h + power_up_after <= meter_now)
        out.push_back(event_row{h + power_up_after, event_power_up});
      if (h + power_down_after <= meter_now && out.size() < event_capacity)
        out.push_back(event_row{h + power_down_after, event_power_down});
    }
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::size_t block_capacity(std::size_t pdu, bool logical_names) {
  // LN: C4 02 iid last block(4) 00 <length> raw; SN: 0C 01 02 last block(2) <length> raw.
  const std::size_t overhead = logical_names ? 9 : 6;
  for (std::size_t length_bytes : {1, 2, 3, 5}) {
    if (pdu <= overhead + length_bytes)
      return 1;
    const std::size_t c = pdu - overhead - length_bytes;
    const bool fits = length_bytes == 1 ? c < 0x80 : length_bytes == 2 ? c < 0x100 : length_bytes == 3 ? c < 0x10000 : true;
    if (fits)
      return c;
  }
  return 1;
}

object_model::object_model(const meter_model& model, const drivers::dlms_config& config, unix_seconds meter_now)
    : model_(model), config_(config), now_(meter_now), objects_(objects(config)) {
  if (!model.faults().access_error_obis.empty())
    access_error_ = dl::parse_obis(model.faults().access_error_obis);
}

const object* object_model::find(const dl::obis& ln) const {
  for (const auto& o : objects_)
    if (o.ln == ln)
      return &o;
  return nullptr;
}

std::optional<dl::attribute_ref> object_model::sn_attribute(std::uint16_t short_name) const {
  for (const auto& o : objects_) {
    if (short_name < o.base_name || (short_name - o.base_name) % 8 != 0)
      continue;
    const int attribute = (short_name - o.base_name) / 8 + 1;
    if (attribute <= attribute_count(o.class_id))
      return dl::attribute_ref{o.class_id, o.ln, static_cast<std::int8_t>(attribute)};
  }
  return std::nullopt;
}

dl::data object_model::clock_cell(unix_seconds meter_time) const {
  // The meter's local time is meter_time itself; its deviation per the type's convention.
  return dl::data::octet_string(dl::encode_datetime(dl::from_unix(meter_time, 0, wire_deviation(config_))));
}

read_result object_model::read(const dl::attribute_ref& ref, const std::optional<dl::selective_access>& access) const {
  const object* o = find(ref.instance);
  if (!o || (access_error_ && *access_error_ == o->ln))
    return 4; // object undefined
  if (ref.class_id != o->class_id)
    return 9; // class inconsistent
  if (ref.attribute == 1)
    return dl::data::octet_string(dl::obis_bytes(o->ln));
  const int a = ref.attribute;
  const unix_seconds last_start = half_hour_floor(now_) - half_hour;
  switch (o->kind) {
  case object_kind::association: {
    if (a != 2)
      return 4;
    std::vector<dl::data> list;
    const bool ln = config_.referencing == drivers::dlms_referencing::ln;
    for (const auto& x : objects_) {
      if (ln)
        list.push_back(dl::data::structure({dl::data::long_unsigned16(x.class_id), dl::data::unsigned8(x.version),
                                            dl::data::octet_string(dl::obis_bytes(x.ln)),
                                            dl::data::structure({dl::data::array({}), dl::data::array({})})}));
      else
        list.push_back(dl::data::structure({dl::data::long16(static_cast<std::int16_t>(x.base_name)),
                                            dl::data::long_unsigned16(x.class_id), dl::data::unsigned8(x.version),
                                            dl::data::octet_string(dl::obis_bytes(x.ln))}));
    }
    return dl::data::array(std::move(list));
  }
  case object_kind::serial:
    if (a != 2)
      return 4;
    return dl::data::octet_string(model_.reported_serial());
  case object_kind::clock: {
    const auto deviation = wire_deviation(config_);
    if (a == 2)
      return clock_cell(now_);
    if (a == 3)
      return dl::data::long16(static_cast<std::int16_t>(deviation ? *deviation : std::numeric_limits<std::int16_t>::min()));
    if (a == 4)
      return dl::data::unsigned8(0);
    return 4;
  }
  case object_kind::reg: {
    if (a == 3)
      return dl::data::structure({dl::data::integer8(0), dl::data::enumerated(static_cast<std::uint8_t>(channel_unit(o->channel)))});
    if (a != 2)
      return 4;
    return unsigned_value(o->channel == channel_count ? model_.va_register_wh(now_)
                                                      : model_.register_wh(static_cast<channel>(o->channel), now_));
  }
  case object_kind::interval:
    if (a == 3)
      return dl::data::structure({dl::data::integer8(-1), dl::data::enumerated(static_cast<std::uint8_t>(channel_unit(o->channel)))});
    if (a != 2)
      return 4;
    return unsigned_value(model_.interval_wh(static_cast<channel>(o->channel), last_start) * 10);
  case object_kind::profile_status:
    if (a != 2)
      return 4;
    return dl::data::unsigned8(model_.interval_status(last_start));
  case object_kind::event_code: {
    if (a != 2)
      return 4;
    const auto log = events(model_, now_);
    return dl::data::unsigned8(log.empty() ? 0 : log.back().code);
  }
  case object_kind::profile:
  case object_kind::event_log: {
    const bool profile = o->kind == object_kind::profile;
    switch (a) {
    case 2: return buffer(*o, access);
    case 3: {
      std::vector<dl::data> columns{capture_object(8, config_.clock_obis, 2)};
      if (profile) {
        columns.push_back(capture_object(1, profile_status_obis, 2));
        for (int c = 0; c < channel_count; ++c)
          columns.push_back(capture_object(3, interval_obis(c), 2));
      } else {
        columns.push_back(capture_object(1, event_code_obis, 2));
      }
      return dl::data::array(std::move(columns));
    }
    case 4: return dl::data::double_long_unsigned32(profile ? static_cast<std::uint32_t>(half_hour) : 0);
    case 5: return dl::data::enumerated(1); // FIFO
    case 6: return capture_object(8, config_.clock_obis, 2);
    case 7:
      return dl::data::double_long_unsigned32(static_cast<std::uint32_t>(
          profile ? profile_starts(model_, now_).size() : events(model_, now_).size()));
    case 8: return dl::data::double_long_unsigned32(static_cast<std::uint32_t>(profile ? profile_capacity : event_capacity));
    default: return 4;
    }
  }
  }
  return 4;
}

read_result object_model::buffer(const object& o, const std::optional<dl::selective_access>& access) const {
  constexpr int type_unmatched = 12, denied = 3;
  const bool profile = o.kind == object_kind::profile;
  // The rows' capture times (meter time) and their count.
  std::vector<unix_seconds> stamps;
  std::vector<event_row> log;
  const unix_seconds stamp_shift = config_.profile_clock_is_end ? half_hour : 0;
  if (profile) {
    for (auto start : profile_starts(model_, now_))
      stamps.push_back(start + stamp_shift);
  } else {
    log = events(model_, now_);
    for (const auto& e : log)
      stamps.push_back(e.time);
  }
  const std::size_t column_count = profile ? 2 + channel_count : 2;
  std::size_t first = 0, last = stamps.size(); // rows [first, last)
  std::vector<std::size_t> columns;
  for (std::size_t c = 0; c < column_count; ++c)
    columns.push_back(c);

  if (!access) {
    first = stamps.size() > max_rows_whole ? stamps.size() - max_rows_whole : 0;
  } else if (access->selector == 1) {
    if (profile && model_.faults().refuse_range)
      return denied;
    const auto& p = access->parameter;
    if (p.type != dl::tag::structure || p.items.size() != 4 || p.items[0].type != dl::tag::structure ||
        p.items[0].items.size() != 4)
      return type_unmatched;
    const auto& restricting = p.items[0].items;
    if (restricting[0].integer() != 8 || restricting[2].integer() != 2)
      return type_unmatched; // only the clock column restricts
    const auto from_dt = dl::datetime_of(p.items[1]), to_dt = dl::datetime_of(p.items[2]);
    if (!from_dt || !to_dt)
      return type_unmatched;
    const int offset = config_.clock_utc_offset_minutes;
    const auto from_utc = dl::to_unix(*from_dt, config_.clock_deviation, offset);
    const auto to_utc = dl::to_unix(*to_dt, config_.clock_deviation, offset);
    if (!from_utc || !to_utc)
      return type_unmatched;
    const unix_seconds from = *from_utc + offset * 60, to = *to_utc + offset * 60; // meter time
    first = static_cast<std::size_t>(std::lower_bound(stamps.begin(), stamps.end(), from) - stamps.begin());
    last = static_cast<std::size_t>(std::upper_bound(stamps.begin(), stamps.end(), to) - stamps.begin());
    if (last < first)
      last = first;
    if (p.items[3].type == dl::tag::array && !p.items[3].items.empty()) {
      columns.clear();
      const auto descriptors = std::get<dl::data>(read(dl::attribute_ref{7, o.ln, 3}, std::nullopt)).items;
      for (const auto& want : p.items[3].items) {
        if (want.type != dl::tag::structure || want.items.size() < 3)
          return type_unmatched;
        std::optional<std::size_t> found;
        for (std::size_t c = 0; c < descriptors.size(); ++c)
          if (descriptors[c].items[0] == want.items[0] && descriptors[c].items[1] == want.items[1] &&
              descriptors[c].items[2].integer() == want.items[2].integer())
            found = c;
        if (!found)
          return type_unmatched;
        columns.push_back(*found);
      }
    }
  } else if (access->selector == 2) {
    const auto& p = access->parameter;
    if (p.type != dl::tag::structure || p.items.size() != 4)
      return type_unmatched;
    const auto from_entry = p.items[0].integer(), to_entry = p.items[1].integer();
    const auto from_column = p.items[2].integer(), to_column = p.items[3].integer();
    if (!from_entry || !to_entry || !from_column || !to_column)
      return type_unmatched;
    const std::size_t n = stamps.size();
    first = static_cast<std::size_t>(std::max<std::int64_t>(*from_entry, 1) - 1);
    last = *to_entry == 0 ? n : std::min<std::size_t>(static_cast<std::size_t>(*to_entry), n);
    if (first > last)
      first = last;
    const std::size_t c0 = static_cast<std::size_t>(std::max<std::int64_t>(*from_column, 1) - 1);
    const std::size_t c1 = *to_column == 0 ? column_count : std::min<std::size_t>(static_cast<std::size_t>(*to_column), column_count);
    if (c0 >= c1)
      return type_unmatched;
    columns.assign(0, 0);
    for (std::size_t c = c0; c < c1; ++c)
      columns.push_back(c);
  } else {
    return type_unmatched;
  }

  std::vector<dl::data> rows;
  rows.reserve(last - first);
  for (std::size_t i = first; i < last; ++i) {
    std::vector<dl::data> cells;
    // A row directly after the previous row of this reply leaves its clock out (null-data).
    const bool follows = profile && i > first && stamps[i] == stamps[i - 1] + half_hour;
    std::optional<profile_row> row;
    if (profile)
      row = profile_row_at(model_, stamps[i] - stamp_shift);
    for (auto c : columns) {
      if (c == 0)
        cells.push_back(follows ? dl::data::null() : clock_cell(stamps[i]));
      else if (c == 1)
        cells.push_back(dl::data::unsigned8(profile ? row->status : log[i].code));
      else
        cells.push_back(unsigned_value(row->wh[c - 2] * 10));
    }
    rows.push_back(dl::data::structure(std::move(cells)));
  }
  return dl::data::array(std::move(rows));
}

} // namespace cosem

// ---- the meter ----

dlms_meter::dlms_meter(meter_identity identity, meter_faults faults, dlms_meter_config config)
    : model_(std::move(identity), std::move(faults)), config_(dlms_settings_of(model_.identity())), timing_(config),
      line_(model_.identity().line.value_or(drivers::dlms_initial_line())),
      hdlc_(config.over_modem || config_.transport == drivers::dlms_transport::hdlc),
      challenge_(cosem::server_challenge(model_.identity(), config.session_number)),
      system_title_(cosem::server_system_title(model_.identity())) {
  pdu_ = meter_max_pdu(model_.faults());
}

dlms_meter::~dlms_meter() = default;

unix_seconds dlms_meter::meter_now() const { return timing_.meter_now(model_.identity(), now_); }

void dlms_meter::arm(actions& out, std::chrono::milliseconds after) {
  out.push_back(drivers::arm_timer{after, ++timer_id_});
}

void dlms_meter::close(actions& out) {
  if (closed_)
    return;
  closed_ = true;
  pending_.reset();
  out.push_back(drivers::finish{});
}

void dlms_meter::emit(actions& out, std::string bytes) {
  if (send_until_drop(out, std::move(bytes), sent_, model_.faults().drop_after_bytes))
    close(out);
}

void dlms_meter::queue(actions& out, std::string bytes) {
  if (bytes.empty() || closed_)
    return;
  std::string wire = model_.faults().garbage_before_reply;
  const int k = model_.faults().corrupt_bcc_every;
  if (hdlc_ && k > 0) {
    // Frame by frame: every k-th new frame gets a wrong FCS; a frame sent again goes out good.
    dl::hdlc_frame_parser frames;
    frames.feed(bytes);
    while (auto f = frames.next()) {
      std::string good = dl::encode_frame(*f);
      std::string frame = good;
      if (good != last_good_frame_ && ++frames_ % static_cast<std::size_t>(k) == 0)
        frame[frame.size() - 2] = static_cast<char>(frame[frame.size() - 2] ^ 0x5A);
      last_good_frame_ = std::move(good);
      wire += frame;
    }
  } else {
    wire += bytes;
  }
  const bool was_pending = pending_.has_value();
  pending_ = pending_.value_or("") + wire;
  if (timing_.reaction_delay.count() <= 0)
    flush(out);
  else if (!was_pending)
    arm(out, timing_.reaction_delay);
}

void dlms_meter::flush(actions& out) {
  if (!pending_)
    return;
  std::string bytes = std::move(*pending_);
  pending_.reset();
  emit(out, std::move(bytes));
  if (!closed_ && close_after_pending_)
    close(out);
}

actions dlms_meter::on_link_up(drivers::unix_ms now) {
  actions out;
  if (started_ || closed_)
    return out;
  started_ = true;
  now_ = now;
  arm(out, timing_.inactivity_timeout);
  return out;
}

actions dlms_meter::on_link_down(drivers::unix_ms now) {
  now_ = now;
  closed_ = true;
  pending_.reset();
  return {};
}

actions dlms_meter::on_timer(std::uint64_t id, drivers::unix_ms now) {
  actions out;
  if (closed_ || !started_ || id != timer_id_)
    return out;
  now_ = now;
  if (!pending_) {
    close(out); // inactivity
    return out;
  }
  flush(out);
  if (!closed_)
    arm(out, timing_.inactivity_timeout);
  return out;
}

actions dlms_meter::on_bytes(std::string_view data, drivers::unix_ms now) {
  actions out;
  if (closed_ || !started_)
    return out;
  now_ = now;
  if (!model_.faults().silent)
    feed(out, data);
  if (!closed_ && !pending_ && !data.empty())
    arm(out, timing_.inactivity_timeout);
  return out;
}

bool dlms_meter::make_link_for(const dl::hdlc_frame& f) {
  const auto to = dl::decode_server_address(f.destination);
  if (!to || f.source.size() != 1 || to->logical != config_.server_logical_address)
    return false;
  const auto& own = model_.identity().outstation_address;
  if (to->size > 1 && !own.empty()) {
    const auto physical = address_number(own, 0x3FFF);
    if (!physical || *physical != to->physical)
      return false;
  }
  dl::hdlc_settings s;
  s.client_address = static_cast<std::uint8_t>(static_cast<unsigned char>(f.source[0]) >> 1);
  s.server_logical = to->logical;
  s.server_physical = to->physical;
  s.server_address_size = to->size;
  s.server_max_info_receive = s.server_max_info_transmit = meter_max_info(model_.faults());
  link_ = dl::make_hdlc_server(s);
  return true;
}

void dlms_meter::feed(actions& out, std::string_view data) {
  if (hdlc_) {
    parser_.feed(data);
    while (!closed_) {
      auto f = parser_.next();
      if (!f)
        break;
      if (!link_ && !make_link_for(*f))
        continue; // not this meter: no answer
      if (model_.faults().frame_reject && !rejected_frame_ && dl::control::is_i_frame(f->control)) {
        rejected_frame_ = true;
        dl::hdlc_frame frmr;
        frmr.destination = f->source;
        frmr.source = f->destination;
        frmr.control = dl::control::frmr;
        frmr.information = std::string{static_cast<char>(f->control), '\0', '\x01'}; // W: invalid control field
        queue(out, dl::encode_frame(frmr));
        continue;
      }
      feed_link(out, dl::encode_frame(*f));
    }
    return;
  }
  if (ignore_all_)
    return;
  if (link_) {
    feed_link(out, data);
    return;
  }
  // Wrapper: the first header decides whether this meter answers at all.
  wrapper_head_.append(data.data(), data.size());
  if (wrapper_head_.size() < dl::wrapper_header_size)
    return;
  auto be16 = [&](std::size_t at) {
    return static_cast<std::uint16_t>(static_cast<unsigned char>(wrapper_head_[at]) << 8 |
                                      static_cast<unsigned char>(wrapper_head_[at + 1]));
  };
  const std::uint16_t source = be16(2), destination = be16(4);
  const auto& own = model_.identity().outstation_address;
  const auto own_port = address_number(own, 0xFFFF);
  if (!own.empty() && destination != config_.server_logical_address && (!own_port || *own_port != destination)) {
    ignore_all_ = true;
    return;
  }
  dl::wrapper_settings s;
  s.client_wport = source;
  s.server_wport = destination;
  link_ = dl::make_wrapper_server(s);
  const std::string head = std::move(wrapper_head_);
  wrapper_head_.clear();
  feed_link(out, head);
}

void dlms_meter::feed_link(actions& out, std::string_view bytes) { take(out, link_->on_bytes(bytes)); }

void dlms_meter::take(actions& out, dl::link_output&& lo) {
  queue(out, std::move(lo.send));
  for (const auto& apdu : lo.apdus) {
    if (closed_)
      return;
    on_apdu(out, apdu);
  }
  if (closed_)
    return;
  if (lo.closed || !lo.error.empty()) {
    if (pending_)
      close_after_pending_ = true;
    else
      close(out);
  }
}

void dlms_meter::send_apdu(actions& out, const std::string& apdu) {
  if (!closed_)
    take(out, link_->send_apdu(apdu));
}

void dlms_meter::on_apdu(actions& out, const std::string& apdu) {
  if (apdu.empty())
    return;
  const auto tag = static_cast<std::uint8_t>(apdu[0]);
  const bool ln = config_.referencing == drivers::dlms_referencing::ln;
  try {
    switch (tag) {
    case dl::apdu_tag::aarq: on_aarq(out, apdu); return;
    case dl::apdu_tag::rlrq:
      associated_ = authenticated_ = false;
      transfer_.reset();
      send_apdu(out, dl::encode_rlre());
      return;
    case dl::apdu_tag::get_request:
    case dl::apdu_tag::action_request:
    case dl::apdu_tag::read_request:
    case dl::apdu_tag::write_request: {
      const bool ln_service = tag == dl::apdu_tag::get_request || tag == dl::apdu_tag::action_request;
      if (ln_service != ln) {
        send_apdu(out, dl::encode_exception_response({2, 2})); // service unknown, not supported
        return;
      }
      if (!associated_) {
        send_apdu(out, dl::encode_exception_response({1, 1})); // service not allowed, operation not possible
        return;
      }
      if (tag == dl::apdu_tag::get_request)
        on_get(out, apdu);
      else if (tag == dl::apdu_tag::action_request)
        on_action(out, apdu);
      else if (tag == dl::apdu_tag::read_request)
        on_read(out, apdu);
      else
        on_write(out, apdu);
      return;
    }
    default:
      send_apdu(out, dl::encode_exception_response({2, 2}));
      return;
    }
  } catch (const dl::apdu_error&) {
    send_apdu(out, dl::encode_exception_response({2, 2})); // not understood (GET-with-list included)
  } catch (const dl::axdr_error&) {
    send_apdu(out, dl::encode_exception_response({2, 2}));
  }
}

void dlms_meter::on_aarq(actions& out, const std::string& apdu) {
  const auto rq = dl::decode_aarq(apdu);
  const bool ln = config_.referencing == drivers::dlms_referencing::ln;
  const auto& faults = model_.faults();
  const auto& password = model_.identity().password;
  const auto want = config_.authentication.value_or(dl::authentication::none);
  dl::aare a;
  a.logical_names = ln;
  a.vaa_name = ln ? 0x0007 : cosem::association_sn_base;
  a.max_receive_pdu = static_cast<std::uint16_t>(std::min<std::uint32_t>(meter_max_pdu(faults), 0xFFFF));
  auto reject = [&](int diagnostic) {
    a.result = 1;
    a.diagnostic_source = 1;
    a.diagnostic = diagnostic;
    associated_ = authenticated_ = false;
    send_apdu(out, dl::encode_aare(a));
  };
  if (rq.logical_names != ln)
    return reject(2); // application context name not supported
  if (faults.reject_association)
    return reject(1); // no reason given
  const auto got = rq.mechanism;
  if (got == dl::authentication::none) {
    if (want != dl::authentication::none)
      return reject(14); // authentication required
  } else if (got == dl::authentication::low) {
    if (want != dl::authentication::low && want != dl::authentication::none)
      return reject(11); // mechanism name not recognised
    if (faults.reject_password || (!password.empty() && rq.calling_authentication != password))
      return reject(13); // authentication failure
  } else if (got != want || !is_hls(got)) {
    return reject(11);
  }
  mechanism_ = got;
  associated_ = true;
  authenticated_ = !is_hls(got);
  client_challenge_ = rq.calling_authentication;
  client_title_ = rq.calling_ap_title;
  transfer_.reset();
  pdu_ = std::max<std::size_t>(1, std::min<std::size_t>(rq.max_receive_pdu == 0 ? 0xFFFF : rq.max_receive_pdu,
                                                        meter_max_pdu(faults)));
  a.result = 0;
  a.diagnostic = 0;
  if (got != dl::authentication::none)
    a.mechanism = got;
  if (is_hls(got)) {
    a.diagnostic = 14; // authentication required: pass 3/4 follows
    a.responding_authentication = challenge_;
    if (got == dl::authentication::high_sha256)
      a.responding_ap_title = system_title_;
  }
  a.has_initiate_response = true;
  a.negotiated_conformance = rq.proposed_conformance & (ln ? cosem::ln_conformance : cosem::sn_conformance);
  send_apdu(out, dl::encode_aare(a));
}

std::optional<std::string> dlms_meter::hls_reply(const dl::data& f_stoc) {
  if (!is_hls(mechanism_) || f_stoc.type != dl::tag::octet_string || model_.faults().reject_password)
    return std::nullopt;
  const auto& secret = model_.identity().password;
  const std::string expected =
      dl::hls_response(mechanism_, secret, challenge_, client_title_, system_title_, client_challenge_);
  if (f_stoc.bytes != expected)
    return std::nullopt;
  authenticated_ = true;
  return dl::hls_response(mechanism_, secret, client_challenge_, system_title_, client_title_, challenge_);
}

cosem::read_result dlms_meter::read(const dl::attribute_ref& ref, const std::optional<dl::selective_access>& access) {
  if (!authenticated_ && ref.instance != cosem::association_ln)
    return 3; // read-write denied until pass 3/4
  const cosem::object_model objects(model_, config_, meter_now());
  return objects.read(ref, access);
}

std::string dlms_meter::block_apdu(std::uint32_t number, bool last, std::string_view raw, std::optional<int> error) const {
  if (config_.referencing == drivers::dlms_referencing::ln) {
    dl::get_response r;
    r.type = dl::get_response::kind::with_block;
    r.invoke_id = invoke_id_;
    r.block_number = number;
    r.last_block = last || error.has_value();
    r.access_error = error;
    r.raw = std::string(raw);
    return dl::encode_get_response(r);
  }
  dl::read_result r;
  if (error) {
    r.type = dl::read_result::kind::access_error;
    r.access_error = *error;
  } else {
    r.type = dl::read_result::kind::data_block;
    r.last_block = last;
    r.block_number = static_cast<std::uint16_t>(number);
    r.raw = std::string(raw);
  }
  return dl::encode_read_response({r});
}

std::string dlms_meter::first_block(std::string raw, bool profile) {
  transfer t;
  t.per_block = cosem::block_capacity(pdu_, config_.referencing == drivers::dlms_referencing::ln);
  t.raw = std::move(raw);
  t.sent = 1;
  t.profile = profile;
  last_block_apdu_ = block_apdu(1, t.raw.size() <= t.per_block, std::string_view(t.raw).substr(0, t.per_block));
  transfer_ = std::move(t);
  return last_block_apdu_;
}

std::optional<std::string> dlms_meter::next_block(std::uint32_t asked) {
  constexpr int block_number_invalid = 19, no_long_get = 16;
  if (!transfer_)
    return block_apdu(asked, true, {}, no_long_get);
  auto& t = *transfer_;
  if (asked + 1 == t.sent)
    return last_block_apdu_; // the last block again (the client missed it)
  const std::size_t offset = static_cast<std::size_t>(t.sent) * t.per_block;
  if (asked != t.sent || offset >= t.raw.size())
    return block_apdu(asked, true, {}, block_number_invalid);
  const int stop = model_.faults().block_stop_after;
  if (stop > 0 && t.sent >= static_cast<std::uint32_t>(stop))
    return std::nullopt; // the transfer stops answering
  ++t.sent;
  last_block_apdu_ = block_apdu(t.sent, offset + t.per_block >= t.raw.size(),
                                std::string_view(t.raw).substr(offset, t.per_block));
  return last_block_apdu_;
}

namespace {
bool is_profile_buffer(const drivers::dlms_config& config, const dl::attribute_ref& ref) {
  return ref.class_id == 7 && ref.attribute == 2 &&
         ref.instance == config.load_profile_obis.value_or(cosem::default_profile_obis);
}
} // namespace

// A complete response (normal_apdu) or, when too long, its first block; drop_mid_profile.
void dlms_meter::respond(actions& out, const std::string& normal_apdu, const dl::data& value, bool profile) {
  const bool dropping = profile && model_.faults().drop_mid_profile;
  if (normal_apdu.size() <= pdu_) {
    transfer_.reset();
    if (dropping) {
      close(out); // the only block: the line drops instead
      return;
    }
    send_apdu(out, normal_apdu);
    return;
  }
  const std::string first = first_block(dl::encode(value), profile);
  if (dropping)
    close_after_pending_ = true;
  send_apdu(out, first);
}

void dlms_meter::on_get(actions& out, const std::string& apdu) {
  const auto rq = dl::decode_get_request(apdu);
  invoke_id_ = rq.invoke_id;
  if (rq.type == dl::get_request::kind::next) {
    if (auto block = next_block(rq.block_number))
      send_apdu(out, *block);
    return;
  }
  transfer_.reset();
  const auto result = read(rq.attribute, rq.access);
  dl::get_response r;
  r.invoke_id = rq.invoke_id;
  if (const auto* error = std::get_if<int>(&result)) {
    r.access_error = *error;
    send_apdu(out, dl::encode_get_response(r));
    return;
  }
  r.value = std::get<dl::data>(result);
  respond(out, dl::encode_get_response(r), *r.value, is_profile_buffer(config_, rq.attribute));
}

void dlms_meter::on_action(actions& out, const std::string& apdu) {
  const auto rq = dl::decode_action_request(apdu);
  dl::action_response r;
  r.invoke_id = rq.invoke_id;
  if (rq.class_id == 15 && rq.instance == cosem::association_ln && rq.method == 1 && rq.parameter) {
    if (auto reply = hls_reply(*rq.parameter))
      r.value = dl::data::octet_string(*reply);
    else
      r.result = 3; // read-write denied
  } else {
    r.result = 4; // object undefined
  }
  send_apdu(out, dl::encode_action_response(r));
}

void dlms_meter::on_read(actions& out, const std::string& apdu) {
  const auto items = dl::decode_read_request(apdu);
  if (items.size() == 1 && items[0].type == dl::variable_access::kind::block_number) {
    if (auto block = next_block(items[0].block_number))
      send_apdu(out, *block);
    return;
  }
  transfer_.reset();
  const cosem::object_model names(model_, config_, meter_now());
  std::vector<dl::read_result> results;
  bool profile = false;
  for (const auto& item : items) {
    dl::read_result r;
    const auto ref = item.type == dl::variable_access::kind::block_number ? std::nullopt : names.sn_attribute(item.name);
    cosem::read_result got = 4;
    if (ref) {
      std::optional<dl::selective_access> access;
      if (item.type == dl::variable_access::kind::parameterized)
        access = dl::selective_access{item.selector, item.parameter};
      got = read(*ref, access);
      profile = profile || is_profile_buffer(config_, *ref);
    }
    if (const auto* error = std::get_if<int>(&got)) {
      r.type = dl::read_result::kind::access_error;
      r.access_error = *error;
    } else {
      r.value = std::get<dl::data>(got);
    }
    results.push_back(std::move(r));
  }
  const std::string normal = dl::encode_read_response(results);
  if (results.size() == 1 && results[0].type == dl::read_result::kind::data) {
    respond(out, normal, results[0].value, profile);
    return;
  }
  send_apdu(out, normal);
}

void dlms_meter::on_write(actions& out, const std::string& apdu) {
  const auto [items, values] = dl::decode_write_request(apdu);
  constexpr std::uint16_t reply_to_hls = cosem::association_sn_base + 0x20 + 8 * 7; // method 8: 0xFA58
  if (items.size() == 1 && values.size() == 1 && items[0].type == dl::variable_access::kind::name &&
      items[0].name == reply_to_hls) {
    dl::read_result r;
    if (auto reply = hls_reply(values[0])) {
      r.value = dl::data::octet_string(*reply);
    } else {
      r.type = dl::read_result::kind::access_error;
      r.access_error = 3;
    }
    send_apdu(out, dl::encode_read_response({r}));
    return;
  }
  std::vector<dl::write_result> results(items.size(), dl::write_result{false, 3});
  send_apdu(out, dl::encode_write_response(results));
}

// ---- the expected result ----

namespace {

// What a value of a register of `unit` with `scaler` reads as in the driver's report: energy in
// k-units, divided by an exact power of ten (docs/dlms.md "Registers").
double scaled(std::int64_t raw, int scaler, int unit) {
  int exponent = scaler;
  if (unit == unit_wh || unit == unit_varh || unit == unit_vah)
    exponent -= 3;
  double p = 1;
  for (int i = 0; i < std::abs(exponent); ++i)
    p *= 10;
  return exponent < 0 ? static_cast<double>(raw) / p : static_cast<double>(raw) * p;
}

std::string trim_serial(const std::string& s) {
  const auto b = s.find_first_not_of(std::string(" \0", 2));
  if (b == std::string::npos)
    return {};
  return s.substr(b, s.find_last_not_of(std::string(" \0", 2)) - b + 1);
}

} // namespace

dlms_expectation expected_dlms(const meter_identity& identity, const meter_faults& faults,
                               const drivers::session_request& request, unix_seconds now) {
  using drivers::failure_kind;
  dlms_expectation x;
  auto& r = x.readings;
  const auto cfg = dlms_settings_of(identity);
  const bool ln = cfg.referencing == drivers::dlms_referencing::ln;
  const bool hdlc = request.over_modem || cfg.transport == drivers::dlms_transport::hdlc;
  auto fail = [&](failure_kind kind, std::string reason) {
    x.end = {kind, std::move(reason)};
    return x;
  };
  if (faults.refuse_connection)
    return fail(failure_kind::transient, "connection refused");

  // What the driver refuses before sending anything: no password for a mechanism that needs
  // one, then an outstation address out of range.
  const std::string password = request.password.value_or("");
  auto mechanism = cfg.authentication.value_or(dl::authentication::none);
  if (mechanism == dl::authentication::none && !password.empty())
    mechanism = dl::authentication::low;
  if (mechanism != dl::authentication::none && password.empty())
    return fail(failure_kind::permanent,
                "the meter type needs a password (" + dl::authentication_name(mechanism) + " authentication)");
  const int size = cfg.server_address_size;
  const std::uint32_t max_address = !hdlc ? 65535 : size == 1 ? 0 : size == 2 ? 127 : 16383;
  const std::string asked = request.outstation_address.value_or("");
  std::optional<std::uint32_t> asked_number;
  if (!asked.empty()) {
    asked_number = address_number(asked, max_address);
    if (!asked_number)
      return fail(failure_kind::permanent, "outstationAddress must be a number from 0 to " +
                                               std::to_string(max_address) + " for this meter type");
  }

  // Whether the meter answers the address the client uses.
  const std::string first_stage = hdlc ? "link setup" : "association";
  const auto own = address_number(identity.outstation_address, hdlc ? 16383 : 65535);
  bool answers = true;
  if (!identity.outstation_address.empty()) {
    if (hdlc) {
      const std::uint32_t physical = asked_number ? *asked_number : cfg.server_physical_address;
      const bool has_lower = cfg.server_address_size == 0 ? physical != 0 : cfg.server_address_size > 1;
      answers = !has_lower || (own && *own == physical);
    } else {
      const std::uint32_t port = asked_number ? *asked_number : cfg.server_logical_address;
      answers = port == cfg.server_logical_address || (own && *own == port);
    }
  }
  if (faults.silent || !answers)
    return fail(failure_kind::transient, "no answer to " + first_stage);
  if (!hdlc && !faults.garbage_before_reply.empty()) {
    // Garbage breaks the wrapper's stream: the AARE's header is read from it.
    const std::string head = faults.garbage_before_reply + std::string("\x00\x01", 2);
    const int version = static_cast<unsigned char>(head[0]) << 8 | static_cast<unsigned char>(head[1]);
    if (version != 1)
      return fail(failure_kind::transient, "link error: wrapper version " + std::to_string(version));
  }
  if (hdlc && faults.frame_reject)
    return fail(failure_kind::transient, "link error: frame rejected: invalid control field");
  if (faults.reject_association)
    return fail(failure_kind::permanent, "association rejected: " + dl::association_diagnostic_text(1, 1));
  const bool password_ok = !faults.reject_password && (identity.password.empty() || password == identity.password);
  if (mechanism == dl::authentication::low && !password_ok)
    return fail(failure_kind::permanent, "association rejected: " + dl::association_diagnostic_text(1, 13));
  if (is_hls(mechanism) && (faults.reject_password || password != identity.password))
    return fail(failure_kind::permanent, "authentication failure: " + dl::data_access_result_text(3));

  const meter_model model(identity, faults);
  const unix_seconds zone = static_cast<unix_seconds>(cfg.clock_utc_offset_minutes) * 60;
  const unix_seconds meter_now = now + zone + identity.clock_offset_seconds;
  const cosem::object_model objects(model, cfg, meter_now);
  const std::size_t pdu = std::min<std::size_t>(cfg.max_pdu_size == 0 ? 0xFFFF : cfg.max_pdu_size, meter_max_pdu(faults));
  const std::size_t per_block = cosem::block_capacity(pdu, ln);

  // A read the driver makes: its value (or error), and whether its block transfer stops.
  struct answer {
    cosem::read_result result;
    bool stalls = false;
  };
  auto ask = [&](const dl::attribute_ref& ref, const std::optional<dl::selective_access>& access) {
    answer a{objects.read(ref, access), false};
    if (const auto* d = std::get_if<dl::data>(&a.result)) {
      const std::size_t raw = dl::encode(*d).size();
      const std::size_t normal = raw + (ln ? 4 : 3);
      if (normal > pdu && faults.block_stop_after > 0) {
        const std::size_t blocks = (raw + per_block - 1) / per_block;
        a.stalls = blocks > static_cast<std::size_t>(faults.block_stop_after);
      }
    }
    return a;
  };
  auto item_error = [&](const cosem::read_result& res) -> std::optional<std::string> {
    if (const auto* e = std::get_if<int>(&res))
      return dl::data_access_result_text(*e);
    return std::nullopt;
  };
  // SN: an object the meter's list lacks is an item failure of its own.
  auto missing = [&](const dl::obis& code) -> std::optional<std::string> {
    if (!ln && !objects.find(code))
      return std::string("not in the meter's object list");
    return std::nullopt;
  };

  if (!ln) {
    const auto list = ask(dl::attribute_ref{12, cosem::association_ln, 2}, std::nullopt);
    if (list.stalls)
      return fail(failure_kind::transient, "no answer to object list read");
    if (auto why = item_error(list.result))
      return fail(failure_kind::permanent, "object list not read: " + *why);
  }

  // Serial number.
  if (auto why = missing(cfg.serial_number_obis)) {
    r.item_failures.push_back("serial number: " + *why);
  } else {
    const auto a = ask(dl::attribute_ref{1, cfg.serial_number_obis, 2}, std::nullopt);
    if (a.stalls)
      return fail(failure_kind::transient, "no answer to serial number read");
    if (auto why = item_error(a.result)) {
      r.item_failures.push_back("serial number: " + *why);
    } else {
      r.serial_number = trim_serial(std::get<dl::data>(a.result).bytes);
      if (request.expected_serial && trim_serial(*request.expected_serial) != *r.serial_number)
        return fail(failure_kind::permanent, "Serial number mismatch");
    }
  }

  // Clock.
  r.status_events.emplace();
  if (auto why = missing(cfg.clock_obis)) {
    r.item_failures.push_back("clock: " + *why);
  } else {
    const auto a = ask(dl::attribute_ref{8, cfg.clock_obis, 2}, std::nullopt);
    if (a.stalls)
      return fail(failure_kind::transient, "no answer to clock read");
    if (auto why = item_error(a.result)) {
      r.item_failures.push_back("clock: " + *why);
    } else {
      r.meter_time = meter_now - zone;
      r.meter_time_taken = now;
    }
  }

  // Registers.
  r.registers.emplace();
  for (const auto& code : cfg.register_obis) {
    const std::string item = "register " + dl::obis_text(code);
    if (auto why = missing(code)) {
      r.item_failures.push_back(item + ": " + *why);
      continue;
    }
    const auto value = ask(dl::attribute_ref{3, code, 2}, std::nullopt);
    if (value.stalls)
      return fail(failure_kind::transient, "no answer to register read");
    if (auto why = item_error(value.result)) {
      r.item_failures.push_back(item + ": " + *why);
      continue;
    }
    const auto unit = ask(dl::attribute_ref{3, code, 3}, std::nullopt);
    if (unit.stalls)
      return fail(failure_kind::transient, "no answer to register read");
    if (auto why = item_error(unit.result)) {
      r.item_failures.push_back(item + ": " + *why);
      continue;
    }
    const auto& su = std::get<dl::data>(unit.result);
    const int scaler = static_cast<int>(*su.items[0].integer());
    const int unit_code = static_cast<int>(*su.items[1].integer());
    const auto q = drivers::dlms_quantity_of(code, unit_code);
    const auto raw = *std::get<dl::data>(value.result).integer();
    r.registers->push_back(drivers::register_value{q.name, scaled(raw, scaler, unit_code), q.units, now});
  }

  if (!request.survey_from || !request.survey_to || *request.survey_from >= *request.survey_to)
    return x;
  const unix_seconds from = *request.survey_from, to = *request.survey_to;
  const dl::obis profile = cfg.load_profile_obis.value_or(cosem::default_profile_obis);
  if (!cfg.load_profile_obis) {
    r.survey.emplace(); // the type reads no profile: an empty survey
  } else if (auto why = missing(profile)) {
    r.item_failures.push_back("load profile: " + *why);
  } else {
    for (int attribute : {3, 4})
      if (ask(dl::attribute_ref{7, profile, static_cast<std::int8_t>(attribute)}, std::nullopt).stalls)
        return fail(failure_kind::transient, "no answer to load profile read");
    const auto columns = ask(dl::attribute_ref{7, profile, 3}, std::nullopt);
    if (auto why = item_error(columns.result)) {
      r.item_failures.push_back("load profile: " + *why);
    } else {
      for (int c = 0; c < channel_count; ++c)
        if (ask(dl::attribute_ref{3, interval_obis(c), 3}, std::nullopt).stalls)
          return fail(failure_kind::transient, "no answer to load profile read");
      // The buffer: by range, or by entry when the meter refuses ranges.
      std::optional<dl::selective_access> access;
      if (!faults.refuse_range) {
        access = dl::range_access(dl::from_unix(from + zone, 0, std::nullopt), dl::from_unix(to + zone, 0, std::nullopt));
      } else {
        const auto in_use = cosem::profile_starts(model, meter_now).size();
        const unix_seconds clock_now = meter_now - zone;
        const auto n = static_cast<std::size_t>((std::max<unix_seconds>(clock_now - from, 0) + half_hour - 1) / half_hour) + 2;
        access = dl::entry_access(static_cast<std::uint32_t>(in_use >= n ? in_use - n + 1 : 1),
                                  static_cast<std::uint32_t>(in_use));
      }
      const auto buffer = ask(dl::attribute_ref{7, profile, 2}, access);
      if (faults.drop_mid_profile)
        return fail(failure_kind::transient, "line dropped");
      if (buffer.stalls)
        return fail(failure_kind::transient, "no answer to load profile read");
      std::vector<drivers::survey_channel> survey;
      for (int c = 0; c < channel_count; ++c) {
        const auto q = drivers::dlms_quantity_of(interval_obis(c), channel_unit(c));
        survey.push_back(drivers::survey_channel{q.name, q.units, {}});
      }
      for (auto start : cosem::profile_starts(model, meter_now)) {
        const unix_seconds utc = start - zone;
        if (utc < from || utc + half_hour > to)
          continue;
        const auto row = cosem::profile_row_at(model, start);
        for (int c = 0; c < channel_count; ++c)
          survey[c].readings.push_back(drivers::survey_reading{utc, scaled(row.wh[c] * 10, -1, channel_unit(c))});
        if (row.status & status_power_failure)
          r.status_events->push_back("Power down in interval starting " + format_utc(utc));
      }
      r.survey = std::move(survey);
    }
  }

  if (!cfg.event_log_obis)
    return x;
  const dl::obis log = *cfg.event_log_obis;
  if (auto why = missing(log)) {
    r.item_failures.push_back("event log: " + *why);
    return x;
  }
  if (ask(dl::attribute_ref{7, log, 3}, std::nullopt).stalls)
    return fail(failure_kind::transient, "no answer to event log read");
  const auto rows = ask(dl::attribute_ref{7, log, 2},
                        dl::range_access(dl::from_unix(from + zone, 0, std::nullopt), dl::from_unix(to + zone, 0, std::nullopt)));
  if (auto why = item_error(rows.result)) {
    r.item_failures.push_back("event log: " + *why);
    return x;
  }
  if (rows.stalls)
    return fail(failure_kind::transient, "no answer to event log read");
  for (const auto& e : cosem::events(model, meter_now)) {
    const unix_seconds utc = e.time - zone;
    if (utc < from || utc >= to)
      continue;
    r.status_events->push_back("Event " + std::to_string(e.code) +
                               (e.code == cosem::event_power_down ? " (power down)" : " (power up)") + " at " +
                               format_utc(utc));
  }
  return x;
}

} // namespace mts::sim
