# portlabel's IANA labels for Zeek (registry updated @UPDATED@).
@load ./iana-table
@load ./main
