-- IANA service names and port numbers (registry updated @UPDATED@), exported by portlabel.
-- A post-dissector: tshark -X lua_script:THIS_FILE -T fields -e iana.service ...
-- The service port of a TCP/UDP conversation is its responder's (the destination of
-- its first packet), or the originator's when the responder's is unassigned, dynamic
-- or retired and the originator's is assigned: the rule portlabel labels flows with.
local iana = Proto("iana", "IANA service registry (portlabel)")
local f_service = ProtoField.string("iana.service", "Service")
local f_status = ProtoField.string("iana.status", "Status")
local f_description = ProtoField.string("iana.description", "Description")
local f_port = ProtoField.uint16("iana.port", "Port")
iana.fields = { f_service, f_status, f_description, f_port }

local DATA = [==[
@ROWS@]==]

local registry = { tcp = {}, udp = {}, sctp = {}, dccp = {} }
for transport, port, name, status, description in DATA:gmatch("(%a+)\t(%d+)\t([^\t]*)\t(%a+)\t([^\n]*)\n") do
    registry[transport][tonumber(port)] = { name, status, description }
end

local WEAK = { unassigned = true, dynamic = true, retired = true }
local function entry(transport, port)
    local found = registry[transport][port]
    if found then return found end
    return { "", port >= 49152 and "dynamic" or "unassigned", "" }
end

local ports = {}
for _, t in ipairs({ "tcp", "udp", "sctp", "dccp" }) do
    ports[t] = { Field.new(t .. ".srcport"), Field.new(t .. ".dstport") }
end
local streams = { tcp = Field.new("tcp.stream"), udp = Field.new("udp.stream") }
local first = { tcp = {}, udp = {} }  -- conversation -> {originator port, responder port}
function iana.init()  -- a new file or a reload numbers conversations from 0 again
    first = { tcp = {}, udp = {} }
end

local function last(field)
    local all = { field() }
    return all[#all]
end

function iana.dissector(buffer, pinfo, tree)
    for _, t in ipairs({ "tcp", "udp", "sctp", "dccp" }) do
        local src, dst = last(ports[t][1]), last(ports[t][2])
        if src and dst then
            local orig, resp = src.value, dst.value
            local stream = streams[t] and last(streams[t])
            if stream then
                local seen = first[t][stream.value]
                if not seen then
                    seen = { orig, resp }
                    first[t][stream.value] = seen
                end
                orig, resp = seen[1], seen[2]
            end
            local port = resp
            local chosen = entry(t, resp)
            if WEAK[chosen[2]] and entry(t, orig)[2] == "assigned" then
                port, chosen = orig, entry(t, orig)
            end
            local subtree = tree:add(iana, "IANA: " .. (chosen[1] ~= "" and chosen[1] or chosen[2]) .. " (" .. port .. "/" .. t .. ")")
            if chosen[1] ~= "" then subtree:add(f_service, chosen[1]) end
            subtree:add(f_status, chosen[2])
            if chosen[3] ~= "" then subtree:add(f_description, chosen[3]) end
            subtree:add(f_port, port)
            return
        end
    end
end

register_postdissector(iana)
