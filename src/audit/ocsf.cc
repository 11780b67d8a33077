#include "audit/ocsf.h"

namespace ward::audit {

nlohmann::json ToOcsf(const Event& e) {
  int class_uid = 1007, activity = 99;
  const nlohmann::json& d = e.detail.is_object() ? e.detail : nlohmann::json::object();
  const std::string net_kind = d.contains("kind") && d["kind"].is_string() ? d["kind"].get<std::string>() : "";
  if (e.kind == "egress") {
    class_uid = net_kind == "dns" ? 4003 : 4001;
    activity = 1;
  } else if (e.kind == "start" || e.kind == "exec") {
    activity = 1;
  } else if (e.kind == "exit") {
    activity = 2;
  } else if (e.kind == "trim") {
    class_uid = 6002;
  } else if (e.kind == "file") {
    // File System Activity: Create 1, Read 2, Update 3, Delete 4, Get Attributes 8.
    class_uid = 1001;
    const std::string op = d.contains("operation") && d["operation"].is_string() ? d["operation"].get<std::string>() : "";
    activity = op == "create" ? 1 : op == "read" ? 2 : op == "write" ? 3 : op == "remove" ? 4 : op == "stat" ? 8 : 99;
  }
  nlohmann::json o = {
      {"class_uid", class_uid},
      {"category_uid", class_uid / 1000},
      {"activity_id", activity},
      {"type_uid", class_uid * 100 + activity},
      {"time", e.time_ns / 1000000},
      {"severity_id", e.decision == "deny" ? 3 : 1},  // Medium for a refusal, else Informational
      {"message", e.summary},
      {"metadata", {{"version", "1.1.0"}, {"uid", std::to_string(e.seq)},
                    {"product", {{"name", "ward"}, {"vendor_name", "ward"}}}}},
      {"actor", {{"app_name", e.agent}, {"app_uid", e.agent_id}}},
      {"unmapped", {{"agent", e.agent}, {"agentId", e.agent_id}, {"sandbox", e.sandbox}, {"kind", e.kind},
                    {"detail", e.detail}}},
  };
  if (!e.decision.empty()) {
    const bool allowed = e.decision == "allow";
    o["action_id"] = allowed ? 1 : 2;
    o["action"] = allowed ? "Allowed" : "Denied";
    o["disposition_id"] = allowed ? 1 : 2;
    o["disposition"] = allowed ? "Allowed" : "Blocked";
  }
  if (class_uid == 4001) {
    nlohmann::json dst = nlohmann::json::object();
    if (d.contains("address")) dst["ip"] = d["address"];
    if (d.contains("port")) dst["port"] = d["port"];
    if (d.contains("domain") && d["domain"].is_string() && !d["domain"].get<std::string>().empty()) {
      dst["hostname"] = d["domain"];
    }
    if (d.contains("path")) dst["path"] = d["path"];
    o["dst_endpoint"] = dst;
    o["connection_info"] = {{"protocol_name", net_kind == "udp" ? "udp" : net_kind == "unix" ? "unix" : "tcp"}};
  } else if (class_uid == 1001) {
    if (d.contains("path") && d["path"].is_string()) o["file"] = {{"path", d["path"]}, {"type_id", 0}};
    if (d.contains("pid") && d["pid"].is_number_integer()) o["actor"]["process"] = {{"pid", d["pid"]}};
  } else if (class_uid == 4003) {
    o["query"] = {{"hostname", d.contains("domain") ? d["domain"] : ""}, {"type", d.contains("detail") ? d["detail"] : ""}};
  } else if (class_uid == 1007) {
    nlohmann::json process = nlohmann::json::object();
    if (d.contains("argv") && d["argv"].is_array()) {
      std::string cmd;
      for (const auto& a : d["argv"]) {
        if (!cmd.empty()) cmd += ' ';
        cmd += a.is_string() ? a.get<std::string>() : a.dump();
      }
      process["cmd_line"] = cmd;
    }
    if (d.contains("pid")) process["pid"] = d["pid"];
    if (e.kind == "exec") {
      if (d.contains("path") && d["path"].is_string()) process["file"] = {{"path", d["path"]}};
      if (d.contains("ppid") && d["ppid"].is_number_integer()) process["parent_process"] = {{"pid", d["ppid"]}};
    }
    o["process"] = process;
    // The detail is read as stored: a field of another type is left out, never a reason to fail.
    if (d.contains("uid") && d["uid"].is_number_integer()) {
      o["actor"]["user"] = {{"uid", std::to_string(d["uid"].get<int64_t>())}};
    }
    if (e.kind == "exit" && d.contains("exitStatus") && d["exitStatus"].is_number_integer()) {
      o["status_code"] = std::to_string(d["exitStatus"].get<int64_t>());
    }
  }
  return o;
}

}  // namespace ward::audit
