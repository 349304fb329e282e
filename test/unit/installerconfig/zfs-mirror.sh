# bsdinstall(8) script written by be installerconfig.
# Run it with `bsdinstall script THIS_FILE`, or save it as /etc/installerconfig on install media.
# The variables below are read by bsdinstall; the part from the #!/bin/sh line on runs
# chrooted in the installed system.
export nonInteractive="YES"
export DISTRIBUTIONS='kernel.txz base.txz lib32.txz'
export BSDINSTALL_DISTSITE=https://download.freebsd.org/ftp/releases/amd64/14.1-RELEASE
# Root on ZFS (bsdinstall zfsboot)
export ZFSBOOT_DISKS='ada0 ada1'
export ZFSBOOT_VDEV_TYPE=mirror
export ZFSBOOT_POOL_NAME=zroot
export ZFSBOOT_BEROOT_NAME=ROOT
export ZFSBOOT_BOOTFS_NAME=default
export ZFSBOOT_PARTITION_SCHEME=GPT
export ZFSBOOT_BOOT_TYPE=BIOS+UEFI
export ZFSBOOT_SWAP_SIZE=4g
# No GELI: zfsboot would ask for its passphrase on the console (be refuses geli: true).
export ZFSBOOT_GELI_ENCRYPTION=''
export ZFSBOOT_FORCE_4K_SECTORS=1
# The boot environment and its children in be's 'freebsd' layout.
export ZFSBOOT_DATASETS='
	/ROOT                    mountpoint=none
	/ROOT/default            mountpoint=/
	/ROOT/default/tmp        exec=on,setuid=off
	/ROOT/default/usr        canmount=off
	/ROOT/default/var        canmount=off
	/ROOT/default/usr/home
	/ROOT/default/usr/ports  setuid=off
	/ROOT/default/usr/src
	/ROOT/default/var/audit  exec=off,setuid=off
	/ROOT/default/var/crash  exec=off,setuid=off
	/ROOT/default/var/log    exec=off,setuid=off
	/ROOT/default/var/mail   atime=on
	/ROOT/default/var/tmp    setuid=off
'

#!/bin/sh
# Post-install: runs chrooted in the new system.
set -e
# The boot environment's datasets mount only with it: older zfsboot made the BE itself
# canmount=noauto, newer every dataset under it (the canmount=off ones too). The pool is still
# imported here.
zfs set canmount=noauto zroot/ROOT/default
zfs set canmount=noauto zroot/ROOT/default/tmp
zfs set canmount=noauto zroot/ROOT/default/usr/home
zfs set canmount=noauto zroot/ROOT/default/usr/ports
zfs set canmount=noauto zroot/ROOT/default/usr/src
zfs set canmount=noauto zroot/ROOT/default/var/audit
zfs set canmount=noauto zroot/ROOT/default/var/crash
zfs set canmount=noauto zroot/ROOT/default/var/log
zfs set canmount=noauto zroot/ROOT/default/var/mail
zfs set canmount=noauto zroot/ROOT/default/var/tmp
zfs set canmount=off zroot/ROOT/default/usr
zfs set canmount=off zroot/ROOT/default/var
sysrc hostname=lab1.example.org
sysrc sshd_enable=YES
sysrc ifconfig_vtnet0=DHCP
printf '%s\n' '*' | pw usermod -n root -H 0
pw useradd -n alice -m -s /bin/sh -G wheel,operator -c 'Alice Example'
printf '%s\n' '$6$rounds=5000$salt$O0b8aJ3b1c2d3e4f5g6h7i8j9k0' | pw usermod -n alice -H 0
home=$(pw usershow -n alice | cut -d: -f9)
install -d -o alice -g alice -m 700 "$home/.ssh"
printf '%s\n' 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBexampleexampleexampleexampleexample alice@lab' >> "$home/.ssh/authorized_keys"
chown alice:alice "$home/.ssh/authorized_keys"
chmod 600 "$home/.ssh/authorized_keys"
env ASSUME_ALWAYS_YES=yes pkg install -y git tmux
