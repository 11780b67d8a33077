#include "lifecycle/control.h"

#include <nlohmann/json.hpp>

namespace ward::lifecycle {

std::string AuditOffWarning(const std::string& why) {
  return "audit: " + why + "; the sandbox runs without its trail (audit.trail is \"best-effort\")";
}

std::string ExecReportJson(const std::vector<EgressRecord>& egress, uint64_t dropped, const RunResult& mechanisms) {
  nlohmann::json eg = nlohmann::json::array();
  for (const auto& e : egress) {
    eg.push_back({{"kind", e.kind}, {"domain", e.domain}, {"address", e.address}, {"port", e.port},
                  {"allowed", e.allowed}, {"rule", e.rule}, {"reason", e.reason}, {"detail", e.detail},
                  {"path", e.path}, {"atMs", e.at_ms}});
  }
  nlohmann::json j = {{"egress", std::move(eg)}, {"egressDropped", dropped}};
  if (!mechanisms.memory_mechanism.empty()) j["limitMechanisms"]["memory"] = mechanisms.memory_mechanism;
  if (!mechanisms.pids_mechanism.empty()) j["limitMechanisms"]["pids"] = mechanisms.pids_mechanism;
  // Names and reasons may hold any bytes the sandbox sent: replaced, never
  // a throw.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void ReadExecReport(const std::string& json, RunResult* out) {
  if (json.empty()) return;
  // From this user's own supervisor; still read without trusting its shape.
  nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  if (!j.is_object()) return;
  auto str = [](const nlohmann::json& o, const char* k) {
    auto it = o.find(k);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (auto eg = j.find("egress"); eg != j.end() && eg->is_array()) {
    for (const auto& e : *eg) {
      if (!e.is_object()) continue;
      EgressRecord r;
      r.kind = str(e, "kind");
      r.domain = str(e, "domain");
      r.address = str(e, "address");
      r.rule = str(e, "rule");
      r.reason = str(e, "reason");
      r.detail = str(e, "detail");
      r.path = str(e, "path");
      if (auto p = e.find("port"); p != e.end() && p->is_number_integer()) r.port = p->get<int>();
      if (auto a = e.find("allowed"); a != e.end() && a->is_boolean()) r.allowed = a->get<bool>();
      if (auto t = e.find("atMs"); t != e.end() && t->is_number()) r.at_ms = t->get<double>();
      out->egress.push_back(std::move(r));
    }
  }
  if (auto d = j.find("egressDropped"); d != j.end() && d->is_number_unsigned()) out->egress_dropped = d->get<uint64_t>();
  if (auto m = j.find("limitMechanisms"); m != j.end() && m->is_object()) {
    out->memory_mechanism = str(*m, "memory");
    out->pids_mechanism = str(*m, "pids");
  }
}

}  // namespace ward::lifecycle
