##! Logs the IANA service name and status of each connection's service port in conn.log
##! (``iana_service``, ``iana_status``): the responder's port, or the originator's when
##! the responder's is unassigned, dynamic or retired and the originator's is assigned.

@load base/protocols/conn

module Portlabel;

export {
	redef record Conn::Info += {
		## IANA service name of the connection's service port, if the port has one.
		iana_service: string &log &optional;
		## What the IANA registry says of that port: assigned, reserved, retired...
		iana_status: string &log &optional;
	};
}

function status_of(p: port): string
	{
	if ( p in iana_status )
		return iana_status[p];
	return port_to_count(p) >= 49152 ? "dynamic" : "unassigned";
	}

event connection_state_remove(c: connection) &priority=-3
	{
	if ( ! c?$conn )
		return;
	local chosen = c$id$resp_p;
	local weak = set("unassigned", "dynamic", "retired");
	if ( status_of(chosen) in weak && status_of(c$id$orig_p) == "assigned" )
		chosen = c$id$orig_p;
	if ( get_port_transport_proto(chosen) == icmp )
		return;
	c$conn$iana_status = status_of(chosen);
	if ( chosen in iana_services )
		c$conn$iana_service = iana_services[chosen];
	}
