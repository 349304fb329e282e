# bsdinstall(8) script written by be installerconfig.
# Run it with `bsdinstall script THIS_FILE`, or save it as /etc/installerconfig on install media.
# The variables below are read by bsdinstall; the part from the #!/bin/sh line on runs
# chrooted in the installed system.
export nonInteractive="YES"
export DISTRIBUTIONS='kernel.txz base.txz'
export BSDINSTALL_DISTDIR=/usr/freebsd-dist
# Root on ZFS (bsdinstall zfsboot)
export ZFSBOOT_DISKS='da0 da1 da2 da3 da4 da5'
export ZFSBOOT_VDEV_TYPE=raidz2
export ZFSBOOT_POOL_NAME=tank
export ZFSBOOT_POOL_CREATE_OPTIONS='-O compression=lz4 -O atime=off'
export ZFSBOOT_BEROOT_NAME=BE
export ZFSBOOT_BOOTFS_NAME=14.1
export ZFSBOOT_PARTITION_SCHEME=GPT
export ZFSBOOT_SWAP_SIZE=0
# No GELI: zfsboot would ask for its passphrase on the console (be refuses geli: true).
export ZFSBOOT_GELI_ENCRYPTION=''
export ZFSBOOT_FORCE_4K_SECTORS=1
# The boot environment and its children in be's 'freebsd' layout.
export ZFSBOOT_DATASETS='
	/BE                 mountpoint=none
	/BE/14.1            mountpoint=/
	/BE/14.1/tmp        exec=on,setuid=off
	/BE/14.1/usr        canmount=off
	/BE/14.1/var        canmount=off
	/BE/14.1/usr/home
	/BE/14.1/usr/ports  setuid=off
	/BE/14.1/usr/src
	/BE/14.1/var/audit  exec=off,setuid=off
	/BE/14.1/var/crash  exec=off,setuid=off
	/BE/14.1/var/log    exec=off,setuid=off
	/BE/14.1/var/mail   atime=on
	/BE/14.1/var/tmp    setuid=off
'

#!/bin/sh
# Post-install: runs chrooted in the new system.
set -e
# The boot environment's datasets mount only with it: older zfsboot made the BE itself
# canmount=noauto, newer every dataset under it (the canmount=off ones too). The pool is still
# imported here.
zfs set canmount=noauto tank/BE/14.1
zfs set canmount=noauto tank/BE/14.1/tmp
zfs set canmount=noauto tank/BE/14.1/usr/home
zfs set canmount=noauto tank/BE/14.1/usr/ports
zfs set canmount=noauto tank/BE/14.1/usr/src
zfs set canmount=noauto tank/BE/14.1/var/audit
zfs set canmount=noauto tank/BE/14.1/var/crash
zfs set canmount=noauto tank/BE/14.1/var/log
zfs set canmount=noauto tank/BE/14.1/var/mail
zfs set canmount=noauto tank/BE/14.1/var/tmp
zfs set canmount=off tank/BE/14.1/usr
zfs set canmount=off tank/BE/14.1/var
sysrc hostname=store
env ASSUME_ALWAYS_YES=yes pkg install -y smartmontools
